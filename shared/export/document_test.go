package export

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
)

const sampleIssue = `{"id":"10042","key":"ENG-7","fields":{
 "summary":"Fix login","updated":"2026-03-10T12:30:00.000+0100","customfield_10016":3.5,
 "customfield_10100":{"accountId":"557058:f58131cb-b67d-43c7-b30d-6b58d40bd077","displayName":"Ada","emailAddress":"ada@example.com"},
 "customfield_10101":"5b10ac8d82e05b22cc7d4ef5",
 "assignee":{"accountId":"5b10ac8d82e05b22cc7d4ef5","displayName":"Bob","avatarUrls":{"48x48":"https://a/5b10ac8d82e05b22cc7d4ef5"}},
 "parent":{"id":"10001","key":"ENG-1"},"subtasks":[{"id":"10050","key":"ENG-9"}],
 "issuelinks":[{"id":"1","type":{"name":"Blocks"},"outwardIssue":{"id":"10060","key":"ENG-10"}}],
 "attachment":[{"id":"9","filename":"a.png","mimeType":"image/png","size":12}],
 "description":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10ac8d82e05b22cc7d4ef5","text":"@Bob"}}]}]},
 "comment":{"comments":[{"id":"1","author":{"accountId":"5b10ac8d82e05b22cc7d4ef5","displayName":"Bob"},"body":"hi"}],"total":1}
},"changelog":{"total":1,"histories":[{"id":"5","items":[{"field":"assignee","fieldId":"assignee","from":"5b10ac8d82e05b22cc7d4ef5","to":null}]}]}}`

func sampleMeta() map[string]fieldMeta {
	return fieldsFromJira([]jira.Field{
		{ID: "customfield_10016", Name: "Story points", Custom: true, Schema: jira.FieldSchema{Type: "number"}},
		{ID: "customfield_10100", Name: "Approver", Custom: true, Schema: jira.FieldSchema{Type: "user"}},
		{ID: "customfield_10101", Name: "Reviewers", Custom: true, Schema: jira.FieldSchema{Type: "array", Items: "user"}},
		{ID: "summary", Name: "Summary"},
	})
}

func TestBuildDocument(t *testing.T) {
	t.Parallel()
	is, err := parseIssue(json.RawMessage(sampleIssue))
	if err != nil {
		t.Fatal(err)
	}
	meta := sampleMeta()
	in := docInput{issue: is, site: mirror.Site{CloudID: "c1", URL: "https://x.atlassian.net"}, meta: meta,
		scrub: scrub.Options{UserFields: userFields(meta)}, comments: is.embedded("comment", "comments"), changelog: is.Changelog}
	doc, body, err := buildDocument(in)
	if err != nil {
		t.Fatal(err)
	}
	_, again, _ := buildDocument(in)
	if !bytes.Equal(body, again) {
		t.Error("buildDocument() is not deterministic")
	}
	for _, id := range []string{"557058:f58131cb", "5b10ac8d82e05b22cc7d4ef5", "ada@example.com", "accountId"} {
		if strings.Contains(string(body), id) {
			t.Errorf("document holds %q: %s", id, body)
		}
	}
	if doc.Updated != 1773142200000 || doc.Parent == nil || doc.Parent.Key != "ENG-1" || len(doc.Subtasks) != 1 ||
		len(doc.Links) != 1 || doc.Links[0].Direction != "outward" || len(doc.Attachments) != 1 {
		t.Errorf("references: %+v", doc)
	}
	if cf := doc.CustomFields["Story points"]; cf.ID != "customfield_10016" || cf.Type != "number" || cf.Value.(json.Number) != "3.5" {
		t.Errorf("custom field by name = %+v", cf)
	}
	if _, ok := doc.Fields["comment"]; ok || doc.Counts.Comments == nil || *doc.Counts.Comments != (mirror.Count{Exported: 1, Total: 1}) {
		t.Errorf("comments: fields %v counts %+v", doc.Fields["comment"], doc.Counts)
	}
	validateDoc(t, "issue.v1.json", body)
}

func validateDoc(t *testing.T, name string, body []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, n := range []string{"issue.v1.json", "manifest.v1.json"} {
		b, err := mirror.Schemas.ReadFile("schema/" + n)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("https://jiraexport.example/schema/"+n, doc); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile("https://jiraexport.example/schema/" + name)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err := sch.Validate(v); err != nil {
		t.Errorf("document does not validate against %s: %v", name, err)
	}
}

// FuzzBuildDocument: any issue Jira could send builds without panicking, and no account id of it survives.
func FuzzBuildDocument(f *testing.F) {
	f.Add(sampleIssue)
	f.Add(`{"id":"1","key":"A-1","fields":{"x":{"accountId":"5b10ac8d82e05b22cc7d4ef5"}}}`)
	f.Add(`{"id":"2","key":"A-2","fields":{"n":1.5e300,"m":-0,"big":123456789012345678901234567890,"e":1E-7,` +
		`"s":"<a&b> \u2028\u2029 \u00e9 \ud83d\ude00 \u0000 \ud800","arr":[1,2.50,true,null,{}],"customfield_1":{"b":1,"a":[]}}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		is, err := parseIssue(json.RawMessage(raw))
		if err != nil {
			return
		}
		meta := sampleMeta()
		doc, body, err := buildDocument(docInput{issue: is, meta: meta, scrub: scrub.Options{UserFields: userFields(meta)},
			comments: is.embedded("comment", "comments"), changelog: is.Changelog})
		if err != nil {
			return
		}
		// The document's encoder must write exactly what encoding/json writes (stored hashes, byte-identical
		// mirrors across versions).
		if std, err := json.Marshal(doc); err != nil || !bytes.Equal(std, body) {
			t.Fatalf("document encoding differs from encoding/json (%v):\n%s\n%s", err, body, std)
		}
		// An id counts where it stands alone (a longer hex string, e.g. a git hash, holding it is not an id).
		for _, id := range []*regexp.Regexp{standalone("5b10ac8d82e05b22cc7d4ef5"), standalone("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077")} {
			if id.MatchString(raw) && id.MatchString(string(body)) {
				t.Errorf("document holds %s", id)
			}
		}
	})
}

// standalone matches id where no ASCII letter or digit touches it.
func standalone(id string) *regexp.Regexp {
	return regexp.MustCompile(`(?i)(?:^|[^0-9a-z])` + regexp.QuoteMeta(id) + `(?:$|[^0-9a-z])`)
}

// decodeJSON (goccy/go-json, for speed) must read what Jira sends exactly as encoding/json reads it.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	f.Add(sampleIssue)
	f.Add(`{"a":1.50,"b":-0,"c":1e400,"d":"\u00e9\ud800","e":[{},[],null,true],"a":2}`)
	f.Add("{\"s\":\"\xff\xfe\"}")
	f.Fuzz(func(t *testing.T, raw string) {
		var std, got any
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		stdErr := d.Decode(&std)
		gotErr := decodeJSON([]byte(raw), &got)
		if stdErr == nil && (gotErr != nil || !reflect.DeepEqual(std, got)) {
			t.Fatalf("decodeJSON(%q) = %#v, %v; encoding/json reads %#v", raw, got, gotErr, std)
		}
	})
}
