package oauthflow

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"jiraexport/shared/connections"
)

func TestParseCallback(t *testing.T) {
	state := strings.Repeat("s", 43)
	tests := []struct {
		raw     string
		want    callbackQuery
		wantErr bool
	}{
		{raw: "code=abc&state=" + state, want: callbackQuery{Code: "abc", State: state}},
		{raw: "state=" + state + "&code=abc&extra=1", want: callbackQuery{Code: "abc", State: state}},
		{raw: "error=access_denied&error_description=User+did+not+authorize+the+request&state=" + state,
			want: callbackQuery{Error: "access_denied", State: state}},
		{raw: "error=access_denied&code=abc", want: callbackQuery{Error: "access_denied"}},
		{raw: "", wantErr: true},
		{raw: "code=abc", wantErr: true},
		{raw: "state=" + state, wantErr: true},
		{raw: "code=a&code=b&state=" + state, wantErr: true},
		{raw: "code=abc&state=a&state=b", wantErr: true},
		{raw: "code=a%20b&state=" + state, wantErr: true},
		{raw: "code=abc&state=%00", wantErr: true},
		{raw: "code=abc&state=" + state + "&error_description=a&error_description=b", wantErr: true},
		{raw: "code=" + strings.Repeat("c", maxCode+1) + "&state=" + state, wantErr: true},
		{raw: "code=%zz&state=" + state, wantErr: true},
		{raw: "code=abc;state=" + state, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseCallback(tt.raw)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseCallback(%q) = %+v, %v, want %+v, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseAuthorize(t *testing.T) {
	tests := []struct {
		raw     string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"utm=1", "", false},
		{"reauth=abc", "abc", false},
		{"reauth=", "", true},
		{"reauth=a&reauth=b", "", true},
		{"reauth=" + strings.Repeat("a", maxTicket+1), "", true},
		{"reauth=a%0Ab", "", true},
	}
	for _, tt := range tests {
		got, err := parseAuthorize(tt.raw)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseAuthorize(%q) = %q, %v, want %q, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseCallback(f *testing.F) {
	for _, s := range []string{
		"code=abc&state=def", "error=access_denied&state=x", "code=a&code=b&state=c", "code=%zz", "",
		"error=server_error&error_description=Something+broke", "state=%F0%9F%98%80&code=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseCallback(raw)
		if err != nil {
			if q != (callbackQuery{}) {
				t.Fatalf("parseCallback(%q) = %+v with error %v, want the zero value", raw, q, err)
			}
			return
		}
		if q.Error == "" && (q.Code == "" || q.State == "") {
			t.Fatalf("parseCallback(%q) = %+v: accepted without an error or a code and state", raw, q)
		}
		if q.Error != "" && q.Code != "" {
			t.Fatalf("parseCallback(%q) = %+v: an error report carries a code", raw, q)
		}
		for name, v := range map[string]string{"code": q.Code, "state": q.State, "error": q.Error} {
			if !printable(v) {
				t.Fatalf("parseCallback(%q) %s = %q: not printable ASCII", raw, name, v)
			}
		}
		if len(q.Code) > maxCode || len(q.State) > maxState || len(q.Error) > maxError {
			t.Fatalf("parseCallback(%q) = %+v: over the bounds", raw, q)
		}
		// Re-encoding what was accepted decodes to the same thing.
		v := url.Values{}
		for k, s := range map[string]string{"code": q.Code, "state": q.State, "error": q.Error} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if again, err := parseCallback(v.Encode()); err != nil || again != q {
			t.Fatalf("parseCallback(re-encoded %q) = %+v, %v, want %+v", v.Encode(), again, err, q)
		}
	})
}

func FuzzParseAuthorize(f *testing.F) {
	for _, s := range []string{"", "reauth=abc", "reauth=a&reauth=b", "reauth=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ticket, err := parseAuthorize(raw)
		if err == nil && (len(ticket) > maxTicket || !printable(ticket)) {
			t.Fatalf("parseAuthorize(%q) = %q: accepted outside the bounds", raw, ticket)
		}
	})
}

func TestJiraSites(t *testing.T) {
	rs := []resource{
		{ID: "a", Name: "A", URL: "https://a.atlassian.net", Scopes: []string{"read:jira-work", "read:jira-user"}},
		{ID: "c", Name: "C", URL: "https://c.atlassian.net", Scopes: []string{"read:confluence-content.all"}},
		{ID: "a", Name: "A", URL: "https://a.atlassian.net", Scopes: []string{"read:confluence-space.summary", "write:jira-work"}},
		{ID: "g", Name: "G", URL: "https://g.atlassian.net", Scopes: []string{"read:issue:jira"}},
		{ID: "", Name: "?", Scopes: []string{"read:jira-work"}},
	}
	got := jiraSites(rs)
	want := []connections.Site{
		{CloudID: "a", Name: "A", URL: "https://a.atlassian.net", Scopes: []string{"read:jira-work", "read:jira-user", "write:jira-work"}},
		{CloudID: "g", Name: "G", URL: "https://g.atlassian.net", Scopes: []string{"read:issue:jira"}},
	}
	if len(got) != len(want) {
		t.Fatalf("jiraSites = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].CloudID != want[i].CloudID || strings.Join(got[i].Scopes, " ") != strings.Join(want[i].Scopes, " ") {
			t.Errorf("jiraSites[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func confirmRequest(body, contentType string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/oauth/authorize", strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	return r
}

func TestParseConfirm(t *testing.T) {
	tk, csrf := strings.Repeat("t", 43), strings.Repeat("c", 43)
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		body, ct string
		wantErr  bool
	}{
		{"reauth=" + tk + "&csrf=" + csrf, form, false},
		{"csrf=" + csrf + "&reauth=" + tk, form + "; charset=utf-8", false},
		{"reauth=" + tk + "&csrf=" + csrf, "application/json", true},
		{"reauth=" + tk + "&csrf=" + csrf, "", true},
		{"reauth=" + tk, form, true},
		{"reauth=" + tk + "&csrf=" + csrf + "&csrf=" + csrf, form, true},
		{"reauth=" + tk + "&csrf=" + csrf + "&x=1", form, true},
		{"reauth=&csrf=" + csrf, form, true},
		{"reauth=" + tk + "&csrf=short", form, true},
		{"reauth=" + tk + "&csrf=" + strings.Repeat("%", 43), form, true},
		{"reauth=a%20b&csrf=" + csrf, form, true},
		{"reauth=" + strings.Repeat("t", maxForm) + "&csrf=" + csrf, form, true},
	}
	for _, tt := range tests {
		f, err := parseConfirm(confirmRequest(tt.body, tt.ct))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseConfirm(%.60q, %q) error = %v, want error %v", tt.body, tt.ct, err, tt.wantErr)
		}
		if err == nil && (f.Ticket != tk || f.CSRF != csrf) {
			t.Errorf("parseConfirm(%.60q) = %+v", tt.body, f)
		}
	}
}

func TestCSRFMatch(t *testing.T) {
	a, b := newCSRFToken(), newCSRFToken()
	tests := []struct {
		cookie, form string
		want         bool
	}{
		{a, a, true}, {a, b, false}, {"", "", false}, {"x", "x", false}, {a, "", false}, {"", a, false},
	}
	for _, tt := range tests {
		if got := csrfMatch(tt.cookie, tt.form); got != tt.want {
			t.Errorf("csrfMatch(%q, %q) = %v, want %v", tt.cookie, tt.form, got, tt.want)
		}
	}
	if origin("https://api.example.com/oauth/authorize?x=1") != "https://api.example.com" || origin("not a url") != "" {
		t.Errorf("origin() does not reduce URLs to scheme://host")
	}
}

// FuzzParseConfirm: any body either fails or yields a printable, bounded ticket and a well-formed token.
func FuzzParseConfirm(f *testing.F) {
	f.Add("reauth=" + strings.Repeat("t", 43) + "&csrf=" + strings.Repeat("c", 43))
	f.Add("reauth=a&reauth=b&csrf=c")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, body string) {
		c, err := parseConfirm(confirmRequest(body, "application/x-www-form-urlencoded"))
		if err != nil {
			return
		}
		if c.Ticket == "" || len(c.Ticket) > maxTicket || !printable(c.Ticket) || !wellFormedCSRF(c.CSRF) {
			t.Errorf("parseConfirm(%q) = %+v, want a bounded printable ticket and a well-formed token", body, c)
		}
	})
}
