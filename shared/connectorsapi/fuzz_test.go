package connectorsapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"jiraexport/shared/connectors"
	"jiraexport/shared/problem"
)

// FuzzDecodeConnector feeds arbitrary bodies through request decoding and every offline validation rule: no
// panic, and every refusal is a client problem (never an internal error).
func FuzzDecodeConnector(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","siteId":"s","jql":"project = A","schedule":{"expression":"rate(1 hour)","timezone":"Europe/Paris"}}`,
		`{"include":{"attachments":{"enabled":true,"maxBytes":-1,"mediaTypes":["image/*","a/b;c=d"]}},"formats":["json","json"]}`,
		`{"schedule":{"expression":"cron(*/15 * * * MON-FRI)"},"name":"\u0000"}`,
		`{"name":1}`, `[]`, `null`, `{"a":1}`, `{"formats":null}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in connectorIn
		if err := decodeBytes(body, &in); err != nil {
			if problem.CodeOf(err) != problem.Invalid {
				t.Fatalf("decodeBytes(%q) = %v, want an invalid problem", body, err)
			}
			return
		}
		spec := in.newSpec()
		spec.Normalize()
		sched, errs := spec.Validate()
		if len(errs) == 0 && sched == nil && spec.Scheduled() {
			t.Fatalf("Validate(%q) = no errors and no schedule for a scheduled connector", body)
		}
		for _, e := range errs {
			if e.Field == "" || e.Reason == "" {
				t.Fatalf("Validate(%q) field error %+v lacks field or reason", body, e)
			}
		}
		// Patching an existing connector with the same body must not panic either.
		base := connectors.Spec{Name: "n", SiteID: "s", JQL: "project = A", Formats: []string{"json"}}
		in.apply(&base)
		base.Normalize()
		base.Validate()
	})
}

// FuzzDecodeJSONRequest exercises the HTTP-level checks (media type, size) with arbitrary headers and bodies.
func FuzzDecodeJSONRequest(f *testing.F) {
	f.Add("application/json", []byte(`{"name":"k"}`))
	f.Add("application/json; charset=latin1", []byte(`{}`))
	f.Add("text/plain", []byte(`{}`))
	f.Add("application/json", []byte(strings.Repeat(" ", 10)))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/connection/keys", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", ct)
		var in struct {
			Name *string `json:"name"`
		}
		err := decodeJSON(httptest.NewRecorder(), r, &in)
		var pe *problem.Error
		if err != nil && (!errors.As(err, &pe) || pe.Code.Status() >= 500) {
			t.Fatalf("decodeJSON(%q, %q) = %v, want a 4xx problem", ct, body, err)
		}
		if err == nil && !json.Valid(body) {
			t.Fatalf("decodeJSON(%q, %q) accepted invalid JSON", ct, body)
		}
	})
}
