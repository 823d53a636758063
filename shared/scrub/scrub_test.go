package scrub

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

const (
	idA = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
	idB = "5b10ac8d82e05b22cc7d4ef5"
	idC = "qm:1ba4b7f3-3ac1-4ffd-a1c4-06a8d0ac2b63:eb1b8fa4-3ff2-4f4a-bc37-1c33a1a4a9d0"
)

func scrubJSON(t *testing.T, in string, o Options) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatalf("bad test input %s: %v", in, err)
	}
	out, err := json.Marshal(Value(v, o))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestValue(t *testing.T) {
	users := Options{UserFields: map[string]bool{"customfield_10100": true, "customfield_10101": true}}
	users2 := Options{UserFields: map[string]bool{"customfield_10033": true}}
	tests := []struct {
		name, in string
		o        Options
		want     string
	}{
		{"user object", `{"accountId":"` + idA + `","accountType":"atlassian","displayName":"Ada","emailAddress":"ada@example.com","active":true,"self":"https://x/rest/api/3/user?accountId=` + idA + `","avatarUrls":{"48x48":"https://avatar/` + idA + `/48"},"timeZone":"UTC"}`,
			Options{}, `{"accountType":"atlassian","active":true,"displayName":"Ada","timeZone":"UTC"}`},
		{"email kept on request", `{"accountId":"` + idB + `","displayName":"B","emailAddress":"b@example.com"}`,
			Options{KeepEmails: true}, `{"displayName":"B","emailAddress":"b@example.com"}`},
		{"ADF mention", `{"type":"mention","attrs":{"id":"` + idA + `","text":"@Ada","accessLevel":""}}`,
			Options{}, `{"attrs":{"accessLevel":"","text":"@Ada"},"type":"mention"}`},
		{"changelog item of assignee", `{"field":"assignee","fieldtype":"jira","fieldId":"assignee","from":"` + idA + `","fromString":"Ada","to":"` + idB + `","toString":"Bob","tmpFromAccountId":"` + idA + `","tmpToAccountId":"` + idB + `"}`,
			Options{}, `{"field":"assignee","fieldId":"assignee","fieldtype":"jira","fromString":"Ada","toString":"Bob"}`},
		{"changelog item of user picker, unknown shape of id", `{"field":"Approver","fieldtype":"custom","fieldId":"customfield_10100","from":"legacy-user","to":"other"}`,
			users, `{"field":"Approver","fieldId":"customfield_10100","fieldtype":"custom"}`},
		{"changelog item of status keeps from/to", `{"field":"status","fieldtype":"jira","fieldId":"status","from":"10000","fromString":"To Do","to":"3","toString":"Done"}`,
			Options{}, `{"field":"status","fieldId":"status","fieldtype":"jira","from":"10000","fromString":"To Do","to":"3","toString":"Done"}`},
		{"user picker custom field as bare ids", `{"customfield_10100":"` + idA + `","customfield_10101":["` + idB + `","` + idC + `"],"summary":"s"}`,
			users, `{"customfield_10101":[],"summary":"s"}`},
		{"user picker custom field as users", `{"customfield_10101":[{"accountId":"` + idB + `","displayName":"Bob"}]}`,
			users, `{"customfield_10101":[{"displayName":"Bob"}]}`},
		{"unknown place: id cut out of text", `{"body":"ping ` + idA + ` and ` + idB + `, thanks","sha":"` + strings.Repeat("ab", 20) + `"}`,
			Options{}, `{"body":"ping ` + Removed + ` and ` + Removed + `, thanks","sha":"` + strings.Repeat("ab", 20) + `"}`},
		{"changelog item of a user picker without /field (tmp ids, shaped from/to)", `{"field":"Reviewer","fieldtype":"custom","fieldId":"customfield_10032","from":"` + idA + `","fromString":"Ada","to":"` + idB + `","toString":"Bob","tmpFromAccountId":"` + idA + `","tmpToAccountId":"` + idB + `"}`,
			Options{}, `{"field":"Reviewer","fieldId":"customfield_10032","fieldtype":"custom","fromString":"Ada","toString":"Bob"}`},
		{"changelog item of a multi-user picker, nulls", `{"field":"Watchers","fieldtype":"custom","fieldId":"customfield_10033","from":null,"fromString":null,"to":"[` + idA + `, ` + idB + `]","toString":"Ada, Bob","tmpToAccountId":"` + idA + `"}`,
			users2, `{"field":"Watchers","fieldId":"customfield_10033","fieldtype":"custom","fromString":null,"toString":"Ada, Bob"}`},
		{"worklog: authors and a mention in its comment", `{"id":"7","author":{"accountId":"` + idA + `","accountType":"atlassian","displayName":"Ada","self":"https://x/rest/api/3/user?accountId=` + idA + `"},"updateAuthor":{"accountId":"` + idB + `","accountType":"atlassian","displayName":"Bob"},"comment":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"` + idC + `","text":"@C"}}]}]},"timeSpentSeconds":60}`,
			Options{}, `{"author":{"accountType":"atlassian","displayName":"Ada"},"comment":{"content":[{"content":[{"attrs":{"text":"@C"},"type":"mention"}],"type":"paragraph"}],"type":"doc","version":1},"id":"7","timeSpentSeconds":60,"updateAuthor":{"accountType":"atlassian","displayName":"Bob"}}`},
		{"environment and rich-text custom field mentions", `{"environment":{"type":"doc","version":1,"content":[{"type":"mention","attrs":{"id":"` + idA + `","text":"@Ada"}}]},"customfield_10034":{"type":"doc","version":1,"content":[{"type":"mention","attrs":{"id":"` + idB + `","text":"@Bob"}}]}}`,
			Options{}, `{"customfield_10034":{"content":[{"attrs":{"text":"@Bob"},"type":"mention"}],"type":"doc","version":1},"environment":{"content":[{"attrs":{"text":"@Ada"},"type":"mention"}],"type":"doc","version":1}}`},
		{"map keyed by account id", `{"` + idB + `":1,"x":2}`, Options{}, `{"x":2}`},
		{"nested arrays", `[[{"accountId":"` + idC + `","displayName":"C"}]]`, Options{}, `[[{"displayName":"C"}]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrubJSON(t, tt.in, tt.o); got != tt.want {
				t.Errorf("Value(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzValue(f *testing.F) {
	f.Add(`{"accountId":"ID","displayName":"x"}`, idA)
	f.Add(`{"type":"mention","attrs":{"id":"ID"}}`, idB)
	f.Add(`{"fieldId":"assignee","from":"ID","to":"ID"}`, idC)
	f.Add(`["ID",{"k":"see ID here"}]`, idB)
	f.Add(`{"ID":{"self":"https://x/?accountId=ID"}}`, idA)
	f.Fuzz(func(t *testing.T, doc, id string) {
		if !accountIDPattern.MatchString(id) || strings.TrimSpace(id) != id {
			return
		}
		// Take the id as the pattern sees it: the fuzzer's string may carry other text around it.
		m := accountIDPattern.FindStringSubmatch(id)
		id = m[1]
		raw, _ := json.Marshal(id)
		doc = strings.ReplaceAll(doc, "ID", strings.Trim(string(raw), `"`))
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		for _, person := range []func(string, string) string{nil, func(string, string) string { return "person-x" }} {
			var v any
			_ = json.Unmarshal([]byte(doc), &v)
			out, err := json.Marshal(Value(v, Options{UserFields: map[string]bool{"customfield_1": true}, Person: person}))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToLower(string(out)), strings.ToLower(id)) {
				t.Errorf("Value(%s) = %s, still holds %s", doc, out, id)
			}
		}
	})
}

// FuzzFilterAgreesWithPattern: the fast filter never says no where the pattern matches (a miss there would keep
// an account id in an exported document).
func FuzzFilterAgreesWithPattern(f *testing.F) {
	for _, s := range []string{"", "557058:f1b2c3d4-0000-4000-8000-0123456789ab", "5b10ac8d82e05b22cc7d4ef5",
		"qm:f1b2c3d4-0000-4000-8000-0123456789ab:f1b2c3d4-0000-4000-8000-0123456789ab", "plain text",
		"deadbeef-", "x5B10AC8D82E05B22CC7D4EF5y", "ug:F1B2C3D4-0000-4000-8000-0123456789AB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if accountIDPattern.MatchString(s) && !mayHoldAccountID(s) {
			t.Fatalf("filter rejects %q, which the pattern matches", s)
		}
	})
}

// accountIDPattern is the specification of the account id shapes findAccountID finds (see scrub.go).
var accountIDPattern = regexp.MustCompile(
	`(?i)(?:^|[^0-9a-z])((?:\d{1,10}:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?::[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?)|(?:qm|ug):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?::[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?|[0-9a-f]{24})(?:$|[^0-9a-z])`)

// specString is String as the specification's pattern defines it.
func specString(s string) string {
	for accountIDPattern.MatchString(s) {
		loc := accountIDPattern.FindStringSubmatchIndex(s)
		s = s[:loc[2]] + Removed + s[loc[3]:]
	}
	return s
}

var findSeeds = []string{"", "557058:f1b2c3d4-0000-4000-8000-0123456789ab", "5b10ac8d82e05b22cc7d4ef5",
	"qm:f1b2c3d4-0000-4000-8000-0123456789ab:f1b2c3d4-0000-4000-8000-0123456789ab", "plain text",
	"deadbeef-", "x5B10AC8D82E05B22CC7D4EF5y", "ug:F1B2C3D4-0000-4000-8000-0123456789AB",
	"12345678901:f1b2c3d4-0000-4000-8000-0123456789ab", "1234567890:f1b2c3d4-0000-4000-8000-0123456789ab:x",
	"557058:f1b2c3d4-0000-4000-8000-0123456789ab:f1b2c3d4-0000-4000-8000-0123456789abk",
	"\u212a5b10ac8d82e05b22cc7d4ef5", "\u017f5b10ac8d82e05b22cc7d4ef5 ", "é5b10ac8d82e05b22cc7d4ef5\xff",
	"5b10ac8d82e05b22cc7d4ef5/5b10ac8d82e05b22cc7d4ef6", "5b10ac8d82e05b22cc7d4ef5c7d4ef5b10ac8d82e05b22",
	"https://a/5b10ac8d82e05b22cc7d4ef5?x=557058:f1b2c3d4-0000-4000-8000-0123456789ab"}

// TestFindAgreesWithPattern pins the seeds the fuzz target starts from (it runs them too; this names them).
func TestFindAgreesWithPattern(t *testing.T) {
	t.Parallel()
	for _, s := range findSeeds {
		checkFind(t, s)
	}
}

// FuzzFindAgreesWithPattern: the hand-written matcher finds exactly what the specification's pattern finds, and
// String cuts exactly what the pattern's replacement cuts.
func FuzzFindAgreesWithPattern(f *testing.F) {
	for _, s := range findSeeds {
		f.Add(s)
	}
	f.Fuzz(checkFind)
}

func checkFind(t *testing.T, s string) {
	start, end := findAccountID(s)
	want := [2]int{-1, -1}
	if loc := accountIDPattern.FindStringSubmatchIndex(s); loc != nil {
		want = [2]int{loc[2], loc[3]}
	}
	if [2]int{start, end} != want {
		t.Fatalf("findAccountID(%q) = %d, %d; the pattern finds %v", s, start, end, want)
	}
	if got, spec := String(s), specString(s); got != spec {
		t.Fatalf("String(%q) = %q, the pattern's replacement gives %q", s, got, spec)
	}
}

func BenchmarkString(b *testing.B) {
	texts := []string{
		"As a user I want to export the issues of my project with their comments, so that the search index is complete.",
		"https://example.atlassian.net/browse/ABC-123?focusedCommentId=10042",
		"5b10ac8d82e05b22cc7d4ef5",
		"2025-01-02T10:00:00.000+0000",
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range texts {
			_ = String(s)
		}
	}
}

// FuzzKeyOfAccountID: the allocation-free key test agrees with lowering the key and searching it.
func FuzzKeyOfAccountID(f *testing.F) {
	for _, s := range []string{"accountId", "tmpFromAccountId", "ACCOUNTID", "account_id", "accountİd", "\u212aaccountid", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := isKeyOfAccountID(k), strings.Contains(strings.ToLower(k), "accountid"); got != want {
			t.Fatalf("isKeyOfAccountID(%q) = %v, want %v", k, got, want)
		}
	})
}
