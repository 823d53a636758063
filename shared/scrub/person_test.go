package scrub

import (
	"strings"
	"testing"
)

func TestPersonHook(t *testing.T) {
	pseudo := func(id, name string) string {
		if id == "" {
			return "P(?)"
		}
		return "P(" + id[len(id)-4:] + ")"
	}
	o := Options{UserFields: map[string]bool{"customfield_10100": true}, Person: pseudo}
	tests := []struct {
		name, in, want string
	}{
		{"user object", `{"accountId":"` + idA + `","accountType":"atlassian","displayName":"Ada","active":true}`,
			`{"accountType":"atlassian","active":true,"displayName":"P(d077)"}`},
		{"nested author", `{"id":"1","author":{"accountId":"` + idB + `","displayName":"Bo","avatarUrls":{"48x48":"u"}},"body":"x"}`,
			`{"author":{"displayName":"P(4ef5)"},"body":"x","id":"1"}`},
		{"user without account id", `{"displayName":"Former user","accountType":"unknown"}`,
			`{"accountType":"unknown","displayName":"P(?)"}`},
		{"ADF mention", `{"type":"mention","attrs":{"id":"` + idA + `","text":"@Ada","accessLevel":""}}`,
			`{"attrs":{"accessLevel":"","text":"@P(d077)"},"type":"mention"}`},
		{"assignee change", `{"field":"assignee","fieldId":"assignee","from":"` + idA + `","fromString":"Ada","to":"` + idB + `","toString":"Bo"}`,
			`{"field":"assignee","fieldId":"assignee","fromString":"P(d077)","toString":"P(4ef5)"}`},
		{"assignee set from nobody", `{"field":"assignee","fieldId":"assignee","from":null,"fromString":null,"to":"` + idB + `","toString":"Bo"}`,
			`{"field":"assignee","fieldId":"assignee","fromString":null,"toString":"P(4ef5)"}`},
		{"multi-user picker change", `{"field":"Reviewers","fieldId":"customfield_10100","from":"","fromString":"","to":"` + idA + `, ` + idB + `","toString":"Ada, Bo"}`,
			`{"field":"Reviewers","fieldId":"customfield_10100","fromString":"","toString":"P(d077), P(4ef5)"}`},
		{"other field untouched", `{"field":"summary","fieldId":"summary","from":null,"fromString":"Ada's idea","to":null,"toString":"Bo's"}`,
			`{"field":"summary","fieldId":"summary","from":null,"fromString":"Ada's idea","to":null,"toString":"Bo's"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrubJSON(t, tt.in, o); got != tt.want {
				t.Errorf("Value(%s) =\n %s\nwant\n %s", tt.in, got, tt.want)
			}
			if got := scrubJSON(t, tt.in, Options{UserFields: o.UserFields}); strings.Contains(got, "P(") {
				t.Errorf("without Person: %s renamed someone", got)
			}
		})
	}
}
