package connectorsapi_test

import (
	"testing"
)

// TestIncludePeopleAndWorklogs round-trips the people and worklogs options through create, read, merge patch and
// replace (every response is validated against openapi.yaml by the harness).
func TestIncludePeopleAndWorklogs(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	site := w.sites[0]
	include := func(r resp) map[string]any {
		t.Helper()
		inc, _ := r.json(t)["include"].(map[string]any)
		return inc
	}

	// Defaults: display names, no worklogs.
	def := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("defaults", site)}, 201)
	if inc := include(def); inc["people"] != "displayName" || inc["worklogs"] != false {
		t.Errorf("POST without people/worklogs: include = %v, want people displayName, worklogs false", inc)
	}

	body := w.connectorBody("pseudo", site)
	body["include"] = map[string]any{"comments": true, "changelog": true, "people": "pseudonym", "worklogs": true}
	created := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: body}, 201)
	id := created.str(t, "id")
	if inc := include(created); inc["people"] != "pseudonym" || inc["worklogs"] != true || inc["changelog"] != true {
		t.Errorf("POST include = %v, want people pseudonym, worklogs true", inc)
	}
	got := w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 200)
	if inc := include(got); inc["people"] != "pseudonym" || inc["worklogs"] != true {
		t.Errorf("GET include = %v, want people pseudonym, worklogs true", inc)
	}

	// Merge patch of one option keeps the other.
	patched := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a,
		body:   map[string]any{"include": map[string]any{"people": "displayName"}},
		header: map[string]string{"If-Match": got.header.Get("ETag"), "Content-Type": "application/merge-patch+json"}}, 200)
	if inc := include(patched); inc["people"] != "displayName" || inc["worklogs"] != true {
		t.Errorf("PATCH people: include = %v, want people displayName, worklogs still true", inc)
	}
	// An invalid mode is refused and changes nothing.
	w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a,
		body:   map[string]any{"include": map[string]any{"people": "accountId"}},
		header: map[string]string{"If-Match": patched.header.Get("ETag"), "Content-Type": "application/merge-patch+json"}}, 400)

	// PUT replaces the whole connector: absent options return to their defaults.
	put := w.expect(req{method: "PUT", path: "/v1/connectors/" + id, key: a, body: w.connectorBody("put", site),
		header: map[string]string{"If-Match": patched.header.Get("ETag")}}, 200)
	if inc := include(put); inc["people"] != "displayName" || inc["worklogs"] != false {
		t.Errorf("PUT without options: include = %v, want defaults", inc)
	}
}
