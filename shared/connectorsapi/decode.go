package connectorsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"jiraexport/shared/problem"
)

// decodeJSON reads a JSON request body into v strictly: application/json only (415), at most MaxBodyBytes (413),
// no unknown fields, no trailing data, the right types (400 naming the field).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, mediaTypes ...string) error {
	body, err := readJSON(w, r, mediaTypes...)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// readJSON checks the media type (application/json unless mediaTypes say otherwise) and reads at most
// MaxBodyBytes of body.
func readJSON(w http.ResponseWriter, r *http.Request, mediaTypes ...string) ([]byte, error) {
	if len(mediaTypes) == 0 {
		mediaTypes = []string{"application/json"}
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	ok := err == nil
	if ok {
		ok = false
		for _, m := range mediaTypes {
			ok = ok || mt == m
		}
		if cs, has := params["charset"]; has && !strings.EqualFold(cs, "utf-8") {
			ok = false
		}
	}
	if !ok {
		return nil, problem.New(problem.UnsupportedMediaType, "send the body as %s (charset utf-8)", strings.Join(mediaTypes, " or "))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem.New(problem.TooLarge, "the body must be at most %d bytes", MaxBodyBytes)
		}
		return nil, problem.New(problem.Invalid, "the body could not be read")
	}
	return body, nil
}

// nullFields returns the dotted paths of the object members of body that are null, sorted. In a merge patch a
// null removes a member (RFC 7396); no connector field can be removed, so each one is refused by name rather
// than silently ignored. body must already have decoded as an object.
func nullFields(body []byte) []string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case nil:
				out = append(out, prefix+k)
			case map[string]any:
				walk(prefix+k+".", v)
			}
		}
	}
	walk("", m)
	slices.Sort(out)
	return out
}

// decodeBytes is the part of decodeJSON that fuzzing exercises.
func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(problem.Invalid, "the body must hold exactly one JSON value")
	}
	return nil
}

func jsonProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return problem.New(problem.Invalid, "the body is empty; send a JSON object")
	case errors.As(err, &syn):
		return problem.New(problem.Invalid, "the body is not valid JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem.New(problem.Invalid, "the body must be a JSON object")
		}
		return problem.Fields("the body has a field of the wrong type",
			problem.FieldError{Field: field, Reason: "must be " + jsonKind(typ.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			name = "?"
		}
		return problem.Fields("the body has a field this API does not know",
			problem.FieldError{Field: name, Reason: "unknown field"})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(problem.Invalid, "the body is truncated JSON")
	}
	return problem.New(problem.Invalid, "the body is not valid JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return fmt.Sprintf("of JSON type %s", k)
}

// pageParams reads limit and cursor.
func pageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := DefaultPageLimit
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			return 0, "", problem.Fields("invalid query parameter",
				problem.FieldError{Field: "limit", Reason: fmt.Sprintf("must be a whole number from 1 to %d", MaxPageLimit)})
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return problem.Wrap(fmt.Errorf("encode response: %w", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}
