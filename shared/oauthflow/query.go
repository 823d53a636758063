package oauthflow

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// Bounds on what the callback accepts. Atlassian's codes and our states are far shorter; anything longer is not
// from them.
const (
	maxQuery      = 8192
	maxCode       = 2048
	maxState      = 256
	maxError      = 64
	maxTicket     = 256
	maxErrorDescr = 1024
)

var errBadQuery = errors.New("malformed query")

// callbackQuery is the decoded query of GET /oauth/callback: either Code and State, or Error (and usually State).
type callbackQuery struct {
	Code, State, Error string
}

// parseCallback decodes and bounds the callback query. Each parameter may appear at most once (a duplicated
// parameter is a smuggling attempt, not something Atlassian sends), values must be printable ASCII, and the
// result is either an error report or a code with its state. error_description is accepted but dropped: it is
// free text from the network and is never shown or logged.
func parseCallback(rawQuery string) (callbackQuery, error) {
	if len(rawQuery) > maxQuery {
		return callbackQuery{}, errBadQuery
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return callbackQuery{}, errBadQuery
	}
	one := func(name string, max int) (string, error) {
		vs := q[name]
		switch {
		case len(vs) == 0:
			return "", nil
		case len(vs) > 1 || len(vs[0]) > max || !printable(vs[0]):
			return "", errBadQuery
		}
		return vs[0], nil
	}
	var c callbackQuery
	if c.Code, err = one("code", maxCode); err != nil {
		return callbackQuery{}, err
	}
	if c.State, err = one("state", maxState); err != nil {
		return callbackQuery{}, err
	}
	if c.Error, err = one("error", maxError); err != nil {
		return callbackQuery{}, err
	}
	if d := q["error_description"]; len(d) > 1 || len(d) == 1 && len(d[0]) > maxErrorDescr {
		return callbackQuery{}, errBadQuery
	}
	switch {
	case c.Error != "":
		c.Code = "" // an error report never carries a usable code
	case c.Code == "" || c.State == "":
		return callbackQuery{}, errBadQuery
	}
	return c, nil
}

// parseAuthorize decodes GET /oauth/authorize: an optional one-time re-authorisation ticket.
func parseAuthorize(rawQuery string) (ticket string, err error) {
	if len(rawQuery) > maxQuery {
		return "", errBadQuery
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", errBadQuery
	}
	vs := q["reauth"]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1 || vs[0] == "" || len(vs[0]) > maxTicket || !printable(vs[0]):
		return "", errBadQuery
	}
	return vs[0], nil
}

// confirmForm is the decoded body of POST /oauth/authorize (the re-authorisation page's form).
type confirmForm struct {
	Ticket, CSRF string
}

// maxForm bounds the confirmation form's body: two short fields.
const maxForm = 2048

// parseConfirm decodes the confirmation form: exactly one ticket and one CSRF token, each well formed, in an
// application/x-www-form-urlencoded body of at most maxForm bytes.
func parseConfirm(r *http.Request) (confirmForm, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return confirmForm{}, errBadQuery
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxForm+1))
	if err != nil || len(body) > maxForm {
		return confirmForm{}, errBadQuery
	}
	q, err := url.ParseQuery(string(body))
	if err != nil || len(q) != 2 || len(q["reauth"]) != 1 || len(q["csrf"]) != 1 {
		return confirmForm{}, errBadQuery
	}
	f := confirmForm{Ticket: q["reauth"][0], CSRF: q["csrf"][0]}
	if f.Ticket == "" || len(f.Ticket) > maxTicket || !printable(f.Ticket) || !wellFormedCSRF(f.CSRF) {
		return confirmForm{}, errBadQuery
	}
	return f, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
