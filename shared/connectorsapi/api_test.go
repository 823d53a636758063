package connectorsapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
)

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	r := w.expect(req{method: "GET", path: "/v1/openapi.json"}, 200)
	if r.json(t)["openapi"] != "3.1.0" {
		t.Errorf("GET /v1/openapi.json = %.100s, want the 3.1 description", r.body)
	}
}

func TestConnectorLifecycle(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	testLifecycle(t, w)
}

// testLifecycle is the whole CRUD cycle plus preview, runs and disconnect; the e2e test runs it through the
// emulator too.
func testLifecycle(t *testing.T, w *world) {
	a := w.a.key
	site := w.sites[0]

	conn := w.expect(req{method: "GET", path: "/v1/connection", key: a}, 200).json(t)
	if conn["id"] != w.a.connID || conn["reauthorizationRequired"] != false || len(conn["sites"].([]any)) != 2 || conn["token"] == nil || conn["grant"] == nil {
		t.Errorf("GET /v1/connection = %v", conn)
	}

	created := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("first", site)}, 201)
	id := created.str(t, "id")
	etag := created.header.Get("ETag")
	if etag == "" || created.str(t, "etag") != etag || created.header.Get("Location") != "/v1/connectors/"+id || created.json(t)["nextRunAt"] == nil {
		t.Fatalf("POST /v1/connectors = %s (ETag %q, Location %q)", created.body, etag, created.header.Get("Location"))
	}
	got := w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 200)
	if !reflect.DeepEqual(got.json(t), created.json(t)) {
		t.Errorf("GET after POST = %s, want %s", got.body, created.body)
	}
	w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-None-Match": etag}}, 304)

	// List with paging.
	for i := range 3 {
		w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody(fmt.Sprintf("more %d", i), site)}, 201)
	}
	var names []string
	path := "/v1/connectors?limit=3"
	for path != "" {
		page := w.expect(req{method: "GET", path: path, key: a}, 200).json(t)
		for _, it := range page["items"].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		path = ""
		if c, ok := page["nextCursor"].(string); ok {
			path = "/v1/connectors?limit=3&cursor=" + c
		}
	}
	if strings.Join(names, ",") != "first,more 0,more 1,more 2" {
		t.Errorf("listed names = %v", names)
	}

	// Update: If-Match required, stale refused, current accepted.
	patch := map[string]any{"name": "renamed", "enabled": false}
	w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, body: patch}, 428)
	w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, body: patch, header: map[string]string{"If-Match": `"99"`}}, 412)
	upd := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, body: patch,
		header: map[string]string{"If-Match": etag, "Content-Type": "application/merge-patch+json"}}, 200)
	if upd.str(t, "name") != "renamed" || upd.json(t)["enabled"] != false || upd.json(t)["nextRunAt"] != nil || upd.header.Get("ETag") == etag {
		t.Errorf("PATCH = %s, want renamed, disabled, unscheduled, new ETag", upd.body)
	}
	if inc := upd.json(t)["include"].(map[string]any); inc["comments"] != true {
		t.Errorf("PATCH lost unpatched fields: include = %v", inc)
	}
	w.expect(req{method: "PUT", path: "/v1/connectors/" + id, key: a, body: w.connectorBody("put", site), header: map[string]string{"If-Match": etag}}, 412)
	put := w.expect(req{method: "PUT", path: "/v1/connectors/" + id, key: a, body: w.connectorBody("put", site), header: map[string]string{"If-Match": upd.header.Get("ETag")}}, 200)
	if put.str(t, "name") != "put" || put.json(t)["enabled"] != true {
		t.Errorf("PUT = %s", put.body)
	}

	// Preview: the simulator's count for the project.
	pv := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/preview", key: a}, 200).json(t)
	if pv["approximateCount"] != float64(site.Projects[0].Issues) {
		t.Errorf("preview = %v, want %d issues", pv, site.Projects[0].Issues)
	}

	// Runs: start, 409 while active, progress, cancel, history.
	run := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	runID := run.str(t, "id")
	if run.str(t, "status") != "queued" {
		t.Errorf("POST runs = %s, want queued", run.body)
	}
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 409)
	_, err := w.store.UpdateProgress(t.Context(), w.a.connID, id, runID, connectors.Progress{Status: connectors.RunRunning, Phase: "searching",
		Counters: connectors.Counters{IssuesDone: 7, IssuesWritten: 5, IssuesUnchanged: 2, IssuesRemoved: 3, ApproxTotal: 30, Attachments: 2,
			Bytes: 1234, Requests: 4, PointsSpent: 9},
		Errors: []connectors.RunError{{Reason: "attachment_too_large", Message: "1 attachment skipped", At: time.Now().UTC()}}})
	if err != nil {
		t.Fatal(err)
	}
	prog := w.expect(req{method: "GET", path: "/v1/connectors/" + id + "/runs/" + runID, key: a}, 200).json(t)
	if c := prog["counters"].(map[string]any); prog["status"] != "running" || c["issuesDone"] != 7.0 || c["approxTotal"] != 30.0 || c["pointsSpent"] != 9.0 ||
		c["issuesWritten"] != 5.0 || c["issuesUnchanged"] != 2.0 || c["issuesRemoved"] != 3.0 || c["requests"] != 4.0 || len(prog["errors"].([]any)) != 1 {
		t.Errorf("GET run = %v", prog)
	}
	c := w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 200).json(t)
	if c["activeRunId"] != runID || c["lastRun"].(map[string]any)["status"] != "queued" {
		t.Errorf("connector during run = %v", c)
	}
	cancelled := w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs/" + runID + "/cancel", key: a}, 200).json(t)
	if cancelled["status"] != "cancelled" || cancelled["finishedAt"] == nil {
		t.Errorf("cancel = %v", cancelled)
	}
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs/" + runID + "/cancel", key: a}, 409)
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	runs := w.expect(req{method: "GET", path: "/v1/connectors/" + id + "/runs?limit=1", key: a}, 200).json(t)
	if len(runs["items"].([]any)) != 1 || runs["nextCursor"] == nil {
		t.Errorf("runs page = %v, want 1 item and a cursor", runs)
	}
	more := w.expect(req{method: "GET", path: "/v1/connectors/" + id + "/runs?limit=1&cursor=" + runs["nextCursor"].(string), key: a}, 200).json(t)
	if items := more["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != runID || more["nextCursor"] != nil {
		t.Errorf("runs page 2 = %v, want the cancelled run last", more)
	}

	// Keys: create, list, revoke; a revoked key stops working at once.
	nk := w.expect(req{method: "POST", path: "/v1/connection/keys", key: a, body: map[string]any{"name": "ci"}}, 201).json(t)
	list := w.expect(req{method: "GET", path: "/v1/connection/keys", key: a}, 200).json(t)
	if len(list["items"].([]any)) != 2 {
		t.Errorf("keys = %v, want 2", list)
	}
	w.expect(req{method: "GET", path: "/v1/connection", key: nk["key"].(string)}, 200)
	w.expect(req{method: "DELETE", path: "/v1/connection/keys/" + nk["id"].(string), key: a}, 204)
	w.expect(req{method: "GET", path: "/v1/connection", key: nk["key"].(string)}, 401)

	reauth := w.expect(req{method: "POST", path: "/v1/connection/reauthorize", key: a}, 201).json(t)
	if !strings.HasPrefix(reauth["authorizeUrl"].(string), "https://api.example.test/oauth/authorize?reauth=") && !strings.Contains(reauth["authorizeUrl"].(string), "/oauth/authorize?reauth=") {
		t.Errorf("reauthorize = %v", reauth)
	}

	// Delete (with an active run: it is cancelled), then it is gone.
	w.expect(req{method: "DELETE", path: "/v1/connectors/" + id, key: a, header: map[string]string{"If-Match": `"1"`}}, 412)
	w.expect(req{method: "DELETE", path: "/v1/connectors/" + id, key: a}, 204)
	w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 404)

	// Disconnect: everything stops, the key no longer works, b is untouched.
	others := w.expect(req{method: "GET", path: "/v1/connectors", key: a}, 200).json(t)["items"].([]any)
	otherID := others[0].(map[string]any)["id"].(string)
	w.expect(req{method: "POST", path: "/v1/connectors/" + otherID + "/runs", key: a}, 201)
	d := w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 200).json(t)
	if d["status"] != "disconnected" {
		t.Errorf("disconnect = %v", d)
	}
	w.expect(req{method: "GET", path: "/v1/connection", key: a}, 401)
	if _, err := w.store.Get(t.Context(), w.a.connID, otherID); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("connector after disconnect: Get = %v, want ErrNotFound", err)
	}
	if _, err := w.tok.Metadata(t.Context(), w.a.connID); err == nil {
		t.Errorf("tokens survive disconnect")
	}
	w.assertErased(w.a.connID)
	w.expect(req{method: "GET", path: "/v1/connection", key: w.b.key}, 200)
}

// assertErased fails the test if anything of connection connID is left in the table: no item in its partition
// and no API-key hash item naming it.
func (w *world) assertErased(connID string) {
	t := w.t
	t.Helper()
	out, err := w.env.Clients.DynamoDB.Query(t.Context(), &dynamodb.QueryInput{
		TableName:                 aws.String(w.env.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: connections.PK(connID)}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		t.Errorf("after disconnect, partition %s still holds %s", connections.PK(connID), canonical(it))
	}
	for _, row := range strings.Split(w.scan(), "\n") {
		if strings.Contains(row, `pk="APIKEY#`) && strings.Contains(row, `connId="`+connID+`"`) {
			t.Errorf("after disconnect, an API key of the connection remains: %s", row)
		}
	}
}

// TestDisconnectErasesExports: DELETE /v1/connection erases the exported objects too; with a run that was
// active it answers 202 until the settle window has passed (the key still reaches only this route), then 200, and
// nothing of the connection is left while the other connection's objects stay.
func TestDisconnectErasesExports(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	t0 := time.Now()
	w.clock.Store(&t0)
	w.settle.Store(int64(15 * time.Minute))
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	put := func(key string) {
		if _, err := w.env.Clients.S3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &w.env.Bucket, Key: aws.String(key),
			Body: strings.NewReader("{}"), ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &w.env.KeyARN}); err != nil {
			t.Fatal(err)
		}
	}
	put(w.a.connID + "/" + id + "/issues/1.json")
	put(w.a.connID + "/" + id + "/issues/1.json")
	put(w.b.connID + "/x/issues/1.json")

	r := w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 202)
	m := r.json(t)
	if m["erasure"] != "in_progress" || r.header.Get("Retry-After") == "" || m["finishAfter"] == nil {
		t.Errorf("DELETE during a run = %s (Retry-After %q), want in_progress with finishAfter", r.body, r.header.Get("Retry-After"))
	}
	if d, _ := m["deleted"].(map[string]any); d["objectVersion"] != 2.0 || d["token"] != 1.0 {
		t.Errorf("deleted = %v, want 2 object versions and the token", m["deleted"])
	}
	w.expect(req{method: "GET", path: "/v1/connection", key: a}, 401)
	t1 := t0.Add(16 * time.Minute)
	w.clock.Store(&t1)
	if m := w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 200).json(t); m["erasure"] != "done" {
		t.Errorf("DELETE after the settle window = %v, want done", m)
	}
	w.assertErased(w.a.connID)
	out, err := w.env.Clients.S3.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: &w.env.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions) != 1 || !strings.HasPrefix(aws.ToString(out.Versions[0].Key), w.b.connID+"/") || len(out.DeleteMarkers) != 0 {
		t.Errorf("objects after the erasure: %d versions, %d markers; want only B's one", len(out.Versions), len(out.DeleteMarkers))
	}
	w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 401)
}

// TestDisconnectRetry: a disconnect that failed after marking the connection can be finished with the same key,
// which serves nothing else meanwhile.
func TestDisconnectRetry(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	w.expect(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: a}, 201)
	if err := w.store.MarkDisconnected(t.Context(), w.a.connID); err != nil {
		t.Fatal(err)
	}
	for _, r := range []req{
		{method: "GET", path: "/v1/connection"},
		{method: "POST", path: "/v1/connection/keys", body: map[string]any{"name": "late"}},
		{method: "POST", path: "/v1/connectors/" + id + "/runs"},
	} {
		r.key = a
		w.expect(r, 401)
	}
	w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 200)
	w.assertErased(w.a.connID)
	w.expect(req{method: "DELETE", path: "/v1/connection", key: a}, 401)
}

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	site := w.sites[0]
	body := func(mod func(m map[string]any)) map[string]any {
		m := w.connectorBody("v", site)
		mod(m)
		return m
	}
	tests := []struct {
		name       string
		r          req
		status     int
		wantFields []string
		wantType   string
	}{
		{"unknown field", req{body: `{"name":"x","siteId":"s","jql":"project = A","schedule":{"expression":"rate(1 hour)"},"colour":"red"}`}, 400, []string{"colour"}, "invalid"},
		{"unknown nested field", req{body: body(func(m map[string]any) { m["schedule"] = map[string]any{"expression": "rate(1 hour)", "tz": "UTC"} })}, 400, []string{"tz"}, "invalid"},
		{"server field", req{body: body(func(m map[string]any) { m["id"] = "01HZ" })}, 400, []string{"id"}, "invalid"},
		{"wrong type", req{body: body(func(m map[string]any) { m["enabled"] = "yes" })}, 400, []string{"enabled"}, "invalid"},
		{"not an object", req{body: `[1,2]`}, 400, nil, "invalid"},
		{"malformed json", req{body: `{"name":`}, 400, nil, "invalid"},
		{"trailing data", req{body: `{} {}`}, 400, nil, "invalid"},
		{"empty body", req{body: ``}, 400, nil, "invalid"},
		{"wrong content type", req{body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, nil, "unsupported-media-type"},
		{"missing content type", req{body: `{}`, header: map[string]string{"Content-Type": ""}}, 415, nil, "unsupported-media-type"},
		{"oversized", req{body: `{"name":"` + strings.Repeat("x", 70<<10) + `"}`}, 413, nil, "too-large"},
		{"missing fields", req{body: `{}`}, 400, []string{"jql", "name", "siteId"}, "invalid"},
		{"schedule without expression", req{body: body(func(m map[string]any) { m["schedule"] = map[string]any{"timezone": "UTC"} })}, 400, []string{"schedule.expression"}, "invalid"},
		{"census too often", req{body: body(func(m map[string]any) { m["censusIntervalHours"] = 0 })}, 400, []string{"censusIntervalHours"}, "invalid"},
		{"census too rare", req{body: body(func(m map[string]any) { m["censusIntervalHours"] = 721 })}, 400, []string{"censusIntervalHours"}, "invalid"},
		{"name too long", req{body: body(func(m map[string]any) { m["name"] = strings.Repeat("é", 101) })}, 400, []string{"name"}, "invalid"},
		{"blank name", req{body: body(func(m map[string]any) { m["name"] = "  " })}, 400, []string{"name"}, "invalid"},
		{"jql too long", req{body: body(func(m map[string]any) { m["jql"] = "project = A AND " + strings.Repeat("x", 4000) })}, 400, []string{"jql"}, "invalid"},
		{"bad schedule", req{body: body(func(m map[string]any) { m["schedule"] = map[string]any{"expression": "rate(5 minutes)"} })}, 400, []string{"schedule.expression"}, "invalid"},
		{"bad cron", req{body: body(func(m map[string]any) { m["schedule"] = map[string]any{"expression": "cron(0 25 * * *)"} })}, 400, []string{"schedule.expression"}, "invalid"},
		{"bad time zone", req{body: body(func(m map[string]any) {
			m["schedule"] = map[string]any{"expression": "rate(1 hour)", "timezone": "Mars/Base"}
		})}, 400, []string{"schedule.timezone"}, "invalid"},
		{"bad format", req{body: body(func(m map[string]any) { m["formats"] = []string{"json", "pdf"} })}, 400, []string{"formats[1]"}, "invalid"},
		{"bad media type", req{body: body(func(m map[string]any) {
			m["include"] = map[string]any{"attachments": map[string]any{"enabled": true, "mediaTypes": []string{"*/*", "image"}}}
		})}, 400, []string{"include.attachments.mediaTypes[0]", "include.attachments.mediaTypes[1]"}, "invalid"},
		{"attachment cap", req{body: body(func(m map[string]any) {
			m["include"] = map[string]any{"attachments": map[string]any{"enabled": true, "maxBytes": 2 << 30}}
		})}, 400, []string{"include.attachments.maxBytes"}, "invalid"},
		{"bad people mode", req{body: body(func(m map[string]any) {
			m["include"] = map[string]any{"people": "accountId"}
		})}, 400, []string{"include.people"}, "invalid"},
		{"people not a string", req{body: body(func(m map[string]any) {
			m["include"] = map[string]any{"people": true}
		})}, 400, []string{"include.people"}, "invalid"},
		{"worklogs not a boolean", req{body: body(func(m map[string]any) {
			m["include"] = map[string]any{"worklogs": "yes"}
		})}, 400, []string{"include.worklogs"}, "invalid"},
		{"foreign site", req{body: body(func(m map[string]any) { m["siteId"] = "11111111-2222-3333-4444-555555555555" })}, 400, []string{"siteId"}, "invalid"},
		{"jql syntax error from Jira", req{body: body(func(m map[string]any) { m["jql"] = "project = " })}, 400, []string{"jql"}, "invalid"},
		{"unknown field in JQL from Jira", req{body: body(func(m map[string]any) { m["jql"] = "universe = 42" })}, 400, []string{"jql"}, "invalid"},
		{"unbounded JQL", req{body: body(func(m map[string]any) { m["jql"] = "order by key" })}, 400, []string{"jql"}, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			r.method, r.path, r.key = "POST", "/v1/connectors", a
			got := w.expect(r, tt.status)
			if f := got.fields(t); tt.wantFields != nil && !reflect.DeepEqual(f, tt.wantFields) {
				t.Errorf("POST /v1/connectors (%s) fields = %v, want %v (%s)", tt.name, f, tt.wantFields, got.body)
			}
			if typ := got.str(t, "type"); typ != "https://jiraexport.dev/problems/"+tt.wantType {
				t.Errorf("POST /v1/connectors (%s) type = %s, want %s", tt.name, typ, tt.wantType)
			}
		})
	}
	// Jira's own message comes back as the reason.
	got := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: body(func(m map[string]any) { m["jql"] = "universe = 42" })}, 400)
	if !strings.Contains(string(got.body), "universe") {
		t.Errorf("JQL field error = %s, want Jira's message", got.body)
	}

	// Parameters and ids.
	for _, tt := range []struct {
		path   string
		status int
		field  string
	}{
		{"/v1/connectors?limit=0", 400, "limit"},
		{"/v1/connectors?limit=101", 400, "limit"},
		{"/v1/connectors?limit=x", 400, "limit"},
		{"/v1/connectors?cursor=garbage", 400, "cursor"},
		{"/v1/connectors/not-an-id", 400, "id"},
		{"/v1/connectors/01hzzzzzzzzzzzzzzzzzzzzzzz", 400, "id"},
		{"/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404, ""},
		{"/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ/runs/bad", 400, "runId"},
	} {
		got := w.expect(req{method: "GET", path: tt.path, key: a}, tt.status)
		if f := got.fields(t); tt.field != "" && (len(f) != 1 || f[0] != tt.field) {
			t.Errorf("GET %s fields = %v, want [%s]", tt.path, f, tt.field)
		}
	}
	w.expect(req{method: "DELETE", path: "/v1/connection/keys/NOT-A-KEY", key: a}, 400)
	w.expect(req{method: "DELETE", path: "/v1/connection/keys/aaaaaaaaaaaaaaaaaaaaaaaaaa", key: a}, 404)
	w.expect(req{method: "POST", path: "/v1/connection/keys", key: a, body: map[string]any{"name": ""}}, 400)
	w.expect(req{method: "PATCH", path: "/v1/connection", key: a}, 405)
	w.expect(req{method: "GET", path: "/v1/nothing-here", key: a}, 404)
}

func TestReauthRequired(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	if err := w.conns.MarkReauthRequired(t.Context(), w.a.connID, "grant revoked"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []req{
		{method: "POST", path: "/v1/connectors", body: w.connectorBody("y", w.sites[0])},
		{method: "POST", path: "/v1/connectors/" + id + "/preview"},
		{method: "POST", path: "/v1/connectors/" + id + "/runs"},
	} {
		r.key = a
		got := w.expect(r, 409)
		if got.str(t, "type") != "https://jiraexport.dev/problems/reauth-required" || !strings.Contains(got.str(t, "detail"), "reauthorize") {
			t.Errorf("%s %s = %s, want a reauth-required problem", r.method, r.path, got.body)
		}
	}
	conn := w.expect(req{method: "GET", path: "/v1/connection", key: a}, 200).json(t)
	if conn["reauthorizationRequired"] != true || conn["status"] != "reauth_required" {
		t.Errorf("GET /v1/connection = %v, want reauth required", conn)
	}
	// Renaming needs no Jira and still works.
	etag := w.expect(req{method: "GET", path: "/v1/connectors/" + id, key: a}, 200).header.Get("ETag")
	w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, body: map[string]any{"name": "z"}, header: map[string]string{"If-Match": etag}}, 200)

	// A revoked grant found by a Jira call (not yet marked) answers the same way. b's access token is stored as
	// expired, so the call must refresh it, and the refresh is what finds the grant revoked.
	if err := w.sim.RevokeGrant(w.sim.ConsentingUsers()[0].AccountID); err != nil {
		t.Fatal(err)
	}
	expired := *w.b.tok
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := w.tok.Put(t.Context(), w.b.connID, &expired, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got := w.expect(req{method: "POST", path: "/v1/connectors", key: w.b.key, body: w.connectorBody("y", w.sites[0])}, 409)
	if got.str(t, "type") != "https://jiraexport.dev/problems/reauth-required" {
		t.Errorf("POST after grant revoked = %s, want a reauth-required problem", got.body)
	}
}

func TestConcurrentRunStarts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	id := w.expect(req{method: "POST", path: "/v1/connectors", key: w.a.key, body: w.connectorBody("x", w.sites[0])}, 201).str(t, "id")
	const n = 6
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = w.do(req{method: "POST", path: "/v1/connectors/" + id + "/runs", key: w.a.key}).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Errorf("concurrent starts = %v, want one 201 and %d 409", count, n-1)
	}
}

// TestIsolation calls every route with b's ids using a's key, and with missing, malformed, unknown and revoked
// keys: nothing leaks (404 or 401 like a missing resource) and nothing changes.
func TestIsolation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := w.b.key
	bc := w.expect(req{method: "POST", path: "/v1/connectors", key: b, body: w.connectorBody("secret", w.sites[0])}, 201).json(t)
	bid := bc["id"].(string)
	brun := w.expect(req{method: "POST", path: "/v1/connectors/" + bid + "/runs", key: b}, 201).str(t, "id")
	bkey := w.expect(req{method: "POST", path: "/v1/connection/keys", key: b, body: map[string]any{"name": "other"}}, 201).json(t)
	revoked := w.expect(req{method: "POST", path: "/v1/connection/keys", key: w.a.key, body: map[string]any{"name": "old"}}, 201).json(t)
	w.expect(req{method: "DELETE", path: "/v1/connection/keys/" + revoked["id"].(string), key: w.a.key}, 204)
	missingID := connectors.NewID(time.Now())

	routes := func(cid, rid, kid string) []req {
		body := w.connectorBody("x", w.sites[0])
		return []req{
			{method: "GET", path: "/v1/connectors/" + cid},
			{method: "PUT", path: "/v1/connectors/" + cid, body: body, header: map[string]string{"If-Match": `"1"`}},
			{method: "PATCH", path: "/v1/connectors/" + cid, body: map[string]any{"name": "pwned"}, header: map[string]string{"If-Match": `"1"`}},
			{method: "DELETE", path: "/v1/connectors/" + cid},
			{method: "POST", path: "/v1/connectors/" + cid + "/preview"},
			{method: "POST", path: "/v1/connectors/" + cid + "/runs"},
			{method: "GET", path: "/v1/connectors/" + cid + "/runs"},
			{method: "GET", path: "/v1/connectors/" + cid + "/runs/" + rid},
			{method: "POST", path: "/v1/connectors/" + cid + "/runs/" + rid + "/cancel"},
			{method: "DELETE", path: "/v1/connection/keys/" + kid},
		}
	}
	before := w.scan()

	// a's key on b's ids answers exactly like a missing id.
	foreign := routes(bid, brun, bkey["id"].(string))
	missing := routes(missingID, missingID, "aaaaaaaaaaaaaaaaaaaaaaaaaa")
	for i := range foreign {
		f, m := foreign[i], missing[i]
		f.key, m.key = w.a.key, w.a.key
		gf, gm := w.do(f), w.do(m)
		if gf.status != 404 || gf.status != gm.status || normalise(gf.body, bid, brun, bkey["id"].(string)) != normalise(gm.body, missingID, missingID, "aaaaaaaaaaaaaaaaaaaaaaaaaa") {
			t.Errorf("%s %s with another connection's id = %d %s; missing id = %d %s", f.method, f.path, gf.status, gf.body, gm.status, gm.body)
		}
		if strings.Contains(string(gf.body), "secret") {
			t.Errorf("%s %s leaks b's data: %s", f.method, f.path, gf.body)
		}
	}
	// Listing with a's key shows none of b's connectors; b's cursor is refused on a's list.
	if items := w.expect(req{method: "GET", path: "/v1/connectors", key: w.a.key}, 200).json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("a's list = %v, want empty", items)
	}

	// Bad keys, on every route (including ones with valid ids), get one identical 401 per path.
	all := append(routes(bid, brun, bkey["id"].(string)), req{method: "GET", path: "/v1/connection"}, req{method: "DELETE", path: "/v1/connection"},
		req{method: "POST", path: "/v1/connection/reauthorize"}, req{method: "GET", path: "/v1/connection/keys"},
		req{method: "POST", path: "/v1/connection/keys", body: map[string]any{"name": "x"}}, req{method: "GET", path: "/v1/connectors"},
		req{method: "POST", path: "/v1/connectors", body: w.connectorBody("x", w.sites[0])}, req{method: "GET", path: "/v1/nowhere"})
	badKeys := map[string]map[string]string{
		"missing":        {"Authorization": ""},
		"not bearer":     {"Authorization": "Basic " + b},
		"malformed":      {"Authorization": "Bearer jxk_short"},
		"unknown":        {"Authorization": "Bearer jxk_" + strings.Repeat("A", 43)},
		"revoked":        {"Authorization": "Bearer " + revoked["key"].(string)},
		"empty bearer":   {"Authorization": "Bearer "},
		"key with space": {"Authorization": "Bearer " + b + " x"},
	}
	for _, r := range all {
		var first []byte
		for name, h := range badKeys {
			r.header = h
			got := w.do(r)
			if got.status != 401 || got.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s key = %d, want 401 with WWW-Authenticate", r.method, r.path, name, got.status)
			}
			if first == nil {
				first = got.body
			} else if string(first) != string(got.body) {
				t.Errorf("%s %s: 401 bodies differ: %s vs %s", r.method, r.path, first, got.body)
			}
		}
	}
	if after := w.scan(); after != before {
		t.Errorf("the table changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// normalise removes the ids from a body so that answers for different ids compare.
func normalise(b []byte, ids ...string) string {
	s := string(b)
	for _, id := range ids {
		s = strings.ReplaceAll(s, id, "ID")
	}
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) == nil {
		delete(m, "instance")
		out, _ := json.Marshal(m)
		return string(out)
	}
	return s
}

var _ = http.MethodGet

// TestKeyLimitConcurrent creates keys concurrently past the limit: the connection ends with exactly MaxKeys
// active keys and every other create is a 409.
func TestKeyLimitConcurrent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	const n = connectorsapi.MaxKeys + 5 // the seeded key is active already
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = w.do(req{method: "POST", path: "/v1/connection/keys", key: w.a.key, body: map[string]any{"name": "k"}}).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != connectorsapi.MaxKeys-1 || count[409] != n-(connectorsapi.MaxKeys-1) {
		t.Errorf("concurrent key creates = %v, want %d 201 and %d 409", count, connectorsapi.MaxKeys-1, n-(connectorsapi.MaxKeys-1))
	}
	keys := w.expect(req{method: "GET", path: "/v1/connection/keys", key: w.a.key}, 200).json(t)["items"].([]any)
	if len(keys) != connectorsapi.MaxKeys {
		t.Errorf("GET /v1/connection/keys = %d keys, want %d", len(keys), connectorsapi.MaxKeys)
	}
}

// TestNextRunAtKept: only a change of schedule, time zone or enabling moves nextRunAt; other edits keep it.
func TestNextRunAtKept(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	w.clock.Store(&t0)
	created := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201)
	id, etag := created.str(t, "id"), created.header.Get("ETag")
	h := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	tests := []struct {
		name  string
		at    time.Duration // the API's clock, after t0
		patch map[string]any
		want  time.Duration // nextRunAt after t0; -1: none
	}{
		{"rename keeps it", h(90), map[string]any{"name": "renamed"}, h(60)},
		{"formats keep it", h(90), map[string]any{"formats": []string{"json"}}, h(60)},
		{"same schedule keeps it", h(90), map[string]any{"schedule": map[string]any{"expression": "rate(1 hour)"}}, h(60)},
		{"new expression moves it", h(90), map[string]any{"schedule": map[string]any{"expression": "rate(2 hours)"}}, h(90 + 120)},
		{"new time zone moves it", h(91), map[string]any{"schedule": map[string]any{"timezone": "UTC"}}, h(91 + 120)},
		{"disabling clears it", h(92), map[string]any{"enabled": false}, -1},
		{"enabling sets it", h(93), map[string]any{"enabled": true}, h(93 + 120)},
	}
	for _, tt := range tests {
		now := t0.Add(tt.at)
		w.clock.Store(&now)
		got := w.expect(req{method: "PATCH", path: "/v1/connectors/" + id, key: a, body: tt.patch, header: map[string]string{"If-Match": etag}}, 200)
		etag = got.header.Get("ETag")
		want := ""
		if tt.want >= 0 {
			want = t0.Add(tt.want).Format(time.RFC3339)
		}
		if next, _ := got.json(t)["nextRunAt"].(string); next != want {
			t.Errorf("PATCH %v (%s): nextRunAt = %q, want %q", tt.patch, tt.name, next, want)
		}
	}
}

// TestConditionalRequests: the ETag changes with every change of the body; If-Match "*" matches an existing
// connector; a merge patch cannot null a field.
func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	a := w.a.key
	created := w.expect(req{method: "POST", path: "/v1/connectors", key: a, body: w.connectorBody("x", w.sites[0])}, 201)
	id, etag := created.str(t, "id"), created.header.Get("ETag")
	path := "/v1/connectors/" + id

	w.expect(req{method: "POST", path: path + "/runs", key: a}, 201)
	got := w.expect(req{method: "GET", path: path, key: a, header: map[string]string{"If-None-Match": etag}}, 200)
	if got.header.Get("ETag") == etag || got.json(t)["activeRunId"] == nil {
		t.Errorf("GET with the pre-run ETag = ETag %s, body %s; want a new ETag and the active run", got.header.Get("ETag"), got.body)
	}
	w.expect(req{method: "PATCH", path: path, key: a, body: map[string]any{"name": "y"}, header: map[string]string{"If-Match": etag}}, 412)

	merge := map[string]string{"If-Match": "*", "Content-Type": "application/merge-patch+json"}
	tests := []struct {
		name       string
		path, body string
		status     int
		wantFields []string
	}{
		{"star matches", path, `{"name":"star"}`, 200, nil},
		{"star on a missing connector", "/v1/connectors/01HZZZZZZZZZZZZZZZZZZZZZZZ", `{"name":"star"}`, 404, nil},
		{"null field", path, `{"name":null}`, 400, []string{"name"}},
		{"null nested fields", path, `{"schedule":{"timezone":null},"include":null,"jql":"project = A"}`, 400, []string{"include", "schedule.timezone"}},
	}
	for _, tt := range tests {
		got := w.expect(req{method: "PATCH", path: tt.path, key: a, body: tt.body, header: merge}, tt.status)
		if f := got.fields(t); !reflect.DeepEqual(f, tt.wantFields) {
			t.Errorf("PATCH %s (%s) fields = %v, want %v (%s)", tt.body, tt.name, f, tt.wantFields, got.body)
		}
	}
	if name := w.expect(req{method: "GET", path: path, key: a}, 200).str(t, "name"); name != "star" {
		t.Errorf("name after the refused patches = %q, want star", name)
	}
}
