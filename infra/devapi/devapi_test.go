package devapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"jiraexport/infra/samtemplate"
	"jiraexport/infra/stacktest"
)

// TestRouterThroughEmulator drives a real bootstrap under the Lambda Runtime Interface Emulator through the
// router, with routes taken from a template.
func TestRouterThroughEmulator(t *testing.T) {
	root := stacktest.Root(t)
	tmpl, err := samtemplate.Load(filepath.Join(root, "infra", "devapi", "testdata", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fn := stacktest.StartTemplateFunction(t, tmpl, root, "EchoFunction", map[string]string{"ECHO_ENV": "from-test"})
	base := stacktest.ServeTemplateAPI(t, tmpl, fn)

	type echo struct {
		RouteKey        string            `json:"routeKey"`
		RawPath         string            `json:"rawPath"`
		Query           map[string]string `json:"query"`
		PathParameters  map[string]string `json:"pathParameters"`
		Cookies         []string          `json:"cookies"`
		Body            string            `json:"body"`
		IsBase64Encoded bool              `json:"isBase64Encoded"`
		Method          string            `json:"method"`
		Header          string            `json:"header"`
		Env             string            `json:"env"`
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		ctype      string
		wantStatus int
		check      func(t *testing.T, e echo)
	}{
		{"path parameter", "GET", "/items/a%20b?x=1&x=2", "", "", 201, func(t *testing.T, e echo) {
			if e.RouteKey != "GET /items/{id}" || e.PathParameters["id"] != "a b" || e.Query["x"] != "1,2" {
				t.Errorf("event = %+v, want route GET /items/{id}, id \"a b\", x \"1,2\"", e)
			}
		}},
		{"json body", "POST", "/items", `{"a":1}`, "application/json", 201, func(t *testing.T, e echo) {
			if e.Body != `{"a":1}` || e.IsBase64Encoded || e.Method != "POST" {
				t.Errorf("event = %+v, want the JSON body as text", e)
			}
		}},
		{"binary body", "POST", "/items", "\x00\x01", "application/octet-stream", 201, func(t *testing.T, e echo) {
			if !e.IsBase64Encoded || e.Body != "AAE=" {
				t.Errorf("event = %+v, want base64 body AAE=", e)
			}
		}},
		{"greedy proxy", "DELETE", "/v1/a/b/c", "", "", 201, func(t *testing.T, e echo) {
			if e.RouteKey != "ANY /v1/{proxy+}" || e.PathParameters["proxy"] != "a/b/c" {
				t.Errorf("event = %+v, want proxy a/b/c", e)
			}
		}},
		{"env and headers", "GET", "/items/1", "", "", 201, func(t *testing.T, e echo) {
			if e.Env != "from-test" || e.Header != "hello" || len(e.Cookies) != 2 {
				t.Errorf("event = %+v, want env from-test, header hello, 2 cookies", e)
			}
		}},
		{"duplicate headers joined", "GET", "/items/1", "", "", 201, func(t *testing.T, e echo) {
			if e.Header != "hello,again" {
				t.Errorf("x-test = %q, want the two values joined by a comma", e.Header)
			}
		}},
		{"base64 response", "GET", "/v1/b64", "", "", 200, nil},
		{"event over Lambda's 6 MB", "POST", "/items", strings.Repeat("x", 7<<20), "text/plain", 413, nil},
		{"body over API Gateway's 10 MB", "POST", "/items", strings.Repeat("x", 11<<20), "text/plain", 413, nil},
		{"no route", "GET", "/nowhere", "", "", 404, nil},
		{"wrong method", "PUT", "/items", "", "", 404, nil},
		{"function error", "GET", "/fail", "", "", 500, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			req.Header.Set("X-Test", "hello")
			if tt.name == "duplicate headers joined" {
				req.Header.Add("X-Test", "again")
			}
			req.Header.Set("Cookie", "c1=v1; c2=v2")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, resp.StatusCode, b, tt.wantStatus)
			}
			if tt.name == "base64 response" && string(b) != "\x00\x01\x02" {
				t.Fatalf("body = %q, want the decoded bytes 00 01 02", b)
			}
			if tt.check == nil {
				return
			}
			if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || resp.Header.Get("X-Echo") != "yes" {
				t.Errorf("headers = %v, want 2 Set-Cookie and X-Echo", resp.Header)
			}
			var e echo
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			tt.check(t, e)
		})
	}
	if !strings.Contains(fn.Logs(), `"route":"GET /items/{id}"`) || !strings.Contains(fn.Logs(), `"requestId":`) {
		t.Errorf("function logs = %q, want the handler's JSON log line", fn.Logs())
	}
}

// BenchmarkRouterThroughEmulator measures one HTTP request through the local router, the emulator and a real
// bootstrap: the fixed overhead every end-to-end test request pays.
func BenchmarkRouterThroughEmulator(b *testing.B) {
	root := stacktest.Root(b)
	tmpl, err := samtemplate.Load(filepath.Join(root, "infra", "devapi", "testdata", "template.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	fn := stacktest.StartTemplateFunction(b, tmpl, root, "EchoFunction", nil)
	base := stacktest.ServeTemplateAPI(b, tmpl, fn)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(base + "/items/1")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
