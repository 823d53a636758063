package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"jiraexport/shared/connectors"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
)

const (
	adaID = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
	bobID = "5b10ac8d82e05b22cc7d4ef5"
)

// peopleIssue names Ada and Bob everywhere Jira puts people: user fields, a user-picker custom field, an ADF
// mention in the description and a comment, comment and changelog authors, changelog items of user fields.
const peopleIssue = `{"id":"10042","key":"ENG-7","fields":{
 "summary":"Fix login","created":"2026-03-01T09:00:00.000+0100","updated":"2026-03-10T12:30:00.000+0100",
 "issuetype":{"name":"Bug"},"status":{"name":"In Progress"},"priority":{"name":"High"},"resolution":null,
 "labels":["auth","no"],"components":[{"id":"1","name":"Backend"}],
 "customfield_10100":{"accountId":"` + adaID + `","displayName":"Ada Lovelace","accountType":"atlassian"},
 "assignee":{"accountId":"` + bobID + `","displayName":"Bob Builder","accountType":"atlassian","avatarUrls":{"48x48":"https://a/` + bobID + `"}},
 "reporter":{"displayName":"Former user","accountType":"unknown"},
 "parent":{"id":"10001","key":"ENG-1"},
 "attachment":[{"id":"9","filename":"shot.png","mimeType":"image/png","size":12},{"id":"10","filename":"big.zip","mimeType":"application/zip","size":99999999}],
 "description":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Ask "},{"type":"mention","attrs":{"id":"` + bobID + `","text":"@Bob Builder"}}]},
   {"type":"mediaSingle","content":[{"type":"media","attrs":{"type":"file","id":"m-1","collection":"c","alt":"shot.png"}}]},
   {"type":"mediaSingle","content":[{"type":"media","attrs":{"type":"file","id":"m-2","collection":"c","alt":"big.zip"}}]}]},
 "comment":{"comments":[{"id":"1","author":{"accountId":"` + adaID + `","displayName":"Ada Lovelace","accountType":"atlassian"},
   "created":"2026-03-02T10:00:00.000+0100","updated":"2026-03-02T10:00:00.000+0100",
   "body":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"` + bobID + `","text":"@Bob Builder"}},{"type":"text","text":" done"}]}]}}],"total":1}
},"changelog":{"total":1,"histories":[{"id":"5","author":{"accountId":"` + adaID + `","displayName":"Ada Lovelace","accountType":"atlassian"},
 "created":"2026-03-03T10:00:00.000+0100",
 "items":[{"field":"assignee","fieldId":"assignee","from":"` + adaID + `","fromString":"Ada Lovelace","to":"` + bobID + `","toString":"Bob Builder"},
          {"field":"Approver","fieldId":"customfield_10100","from":null,"fromString":null,"to":"` + adaID + `","toString":"Ada Lovelace"}]}]}}`

// fakePseudonym stands in for pseudonym.Pseudonymizer.Person (its tests are in shared/pseudonym).
func fakePseudonym(id, _ string) string {
	if id == "" {
		return unknownPerson
	}
	return "person-" + strings.ToLower(id[len(id)-6:])
}

func buildPeopleDoc(t *testing.T, person func(string, string) string) (*mirror.Issue, []byte) {
	t.Helper()
	is, err := parseIssue(json.RawMessage(peopleIssue))
	if err != nil {
		t.Fatal(err)
	}
	meta := sampleMeta()
	doc, body, err := buildDocument(docInput{issue: is, site: mirror.Site{CloudID: "c1", URL: "https://x.atlassian.net/"}, meta: meta,
		scrub:    scrub.Options{UserFields: userFields(meta), Person: person},
		comments: is.embedded("comment", "comments"), changelog: is.Changelog})
	if err != nil {
		t.Fatal(err)
	}
	return doc, body
}

// TestPeopleAndMarkdown: with the Person hook, the JSON and the Markdown name people only by pseudonym; without
// it, by display name; never by account id. The Markdown carries the front matter, links exported attachments
// and says why others are missing.
func TestPeopleAndMarkdown(t *testing.T) {
	t.Parallel()
	ids := []string{adaID, bobID, "accountId"}
	names := []string{"Ada Lovelace", "Bob Builder", "Former user"}
	pseudonyms := []string{fakePseudonym(adaID, ""), fakePseudonym(bobID, ""), unknownPerson}
	spec := &connectors.Spec{Formats: []string{"json", "markdown"}, Include: connectors.Include{Comments: true, Changelog: true,
		Attachments: connectors.Attachments{Enabled: true, MaxBytes: 1 << 20}}}
	tests := []struct {
		name          string
		person        func(string, string) string
		want, mustNot []string
	}{
		{"pseudonym", fakePseudonym, pseudonyms, append(append([]string{}, ids...), names...)},
		{"display name", nil, names, append(append([]string{}, ids...), pseudonyms...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, body := buildPeopleDoc(t, tt.person)
			validateDoc(t, "issue.v1.json", body)
			md, err := renderMarkdown(doc, spec)
			if err != nil {
				t.Fatal(err)
			}
			for what, b := range map[string][]byte{"JSON": body, "Markdown": md} {
				for _, s := range tt.mustNot {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("%s holds %q:\n%s", what, s, b)
					}
				}
				for i, s := range tt.want {
					if what == "Markdown" && i == 2 {
						continue // the reporter is in the JSON only (the front matter names no people)
					}
					if !bytes.Contains(b, []byte(s)) {
						t.Errorf("%s lacks %q:\n%s", what, s, b)
					}
				}
			}
			fm := frontMatter(t, md)
			if fm["key"] != "ENG-7" || fm["id"] != "10042" || fm["type"] != "Bug" || fm["status"] != "In Progress" ||
				fm["issue_url"] != "https://x.atlassian.net/browse/ENG-7" || fm["resolution"] != nil {
				t.Errorf("front matter = %v", fm)
			}
			for _, s := range []string{"](../attachments/9)", "big.zip", "larger than the connector's size limit", "## History", "## Comments"} {
				if !bytes.Contains(md, []byte(s)) {
					t.Errorf("Markdown lacks %q:\n%s", s, md)
				}
			}
			if bytes.Contains(md, []byte("../attachments/10")) {
				t.Errorf("Markdown links an attachment the rules skip:\n%s", md)
			}
		})
	}
}

// frontMatter parses the YAML between the leading --- lines.
func frontMatter(t *testing.T, md []byte) map[string]any {
	t.Helper()
	rest, ok := bytes.CutPrefix(md, []byte("---\n"))
	fm, _, found := bytes.Cut(rest, []byte("\n---\n"))
	if !ok || !found {
		t.Fatalf("no front matter:\n%s", md)
	}
	var out map[string]any
	if err := yaml.Unmarshal(fm, &out); err != nil {
		t.Fatalf("front matter does not parse: %v\n%s", err, fm)
	}
	return out
}

func TestDecideMarkdown(t *testing.T) {
	t.Parallel()
	md := []byte("# x\n")
	h := mirror.Hash(md)
	w := &worker{}
	fresh := &indexEntry{IssueID: "1", Hash: "j2"}
	tests := []struct {
		name     string
		md       []byte
		old, e   *indexEntry
		want     mdAction
		wantHash string
		entry    bool
	}{
		{"new issue", md, nil, fresh, mdPut, h, true},
		{"unchanged", md, &indexEntry{IssueID: "1", Hash: "j", MDHash: h}, nil, mdKeep, "", false},
		{"JSON changed, Markdown not", md, &indexEntry{IssueID: "1", Hash: "j", MDHash: h}, fresh, mdKeep, h, true},
		{"Markdown newly asked for", md, &indexEntry{IssueID: "1", Hash: "j"}, nil, mdPut, h, true},
		{"Markdown changed", md, &indexEntry{IssueID: "1", Hash: "j", MDHash: "other"}, nil, mdPut, h, true},
		{"Markdown no longer asked for", nil, &indexEntry{IssueID: "1", Hash: "j", MDHash: h}, nil, mdDelete, "", true},
		{"back after removal", md, &indexEntry{IssueID: "1", Removed: true, MDHash: h}, fresh, mdPut, h, true},
		{"JSON only", nil, nil, fresh, mdKeep, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *indexEntry
			if tt.e != nil {
				c := *tt.e
				e = &c
			}
			got, a := w.decideMarkdown(built{md: tt.md}, tt.old, e)
			if a != tt.want || (got != nil) != tt.entry || (got != nil && got.MDHash != tt.wantHash) {
				t.Errorf("decideMarkdown() = %+v, %v; want action %v, entry %v with mdHash %q", got, a, tt.want, tt.entry, tt.wantHash)
			}
			if tt.old != nil && got != nil && tt.e == nil && got.Hash != tt.old.Hash {
				t.Errorf("entry copied from the old one changed its JSON hash: %+v", got)
			}
		})
	}
}
