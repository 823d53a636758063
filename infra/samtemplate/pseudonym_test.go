package samtemplate_test

import (
	"reflect"
	"slices"
	"testing"
)

// TestPseudonymKeyGrant: the export (and only the export) may generate and decrypt pseudonym secrets under
// DataKey, and only with purpose=pseudonym-key in the encryption context (shared/pseudonym's context), so the
// grant opens nothing else encrypted under DataKey.
func TestPseudonymKeyGrant(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	dataKey := map[string]any{"Fn::GetAtt": []any{"DataKey", "Arn"}}
	for _, fn := range fns {
		granted := map[string]bool{}
		policies, _ := tmpl.Resources[fn.LogicalID].Properties["Policies"].([]any)
		for _, p := range policies {
			for _, st := range statements(p) {
				if get(st, "Condition", "StringEquals", "kms:EncryptionContext:purpose") != "pseudonym-key" {
					continue
				}
				if !reflect.DeepEqual(get(st, "Resource"), dataKey) || get(st, "Effect") != "Allow" {
					t.Errorf("%s: pseudonym-key statement %v is not an Allow on DataKey", fn.LogicalID, st)
				}
				for _, a := range list(get(st, "Action")) {
					s, _ := a.(string)
					granted[s] = true
				}
			}
		}
		want := fn.LogicalID == "ExportFunction"
		for _, a := range []string{"kms:GenerateDataKey", "kms:Decrypt"} {
			if granted[a] != want {
				t.Errorf("%s: %s with purpose=pseudonym-key granted = %v, want %v", fn.LogicalID, a, granted[a], want)
			}
		}
		for a := range granted {
			if !slices.Contains([]string{"kms:GenerateDataKey", "kms:Decrypt"}, a) {
				t.Errorf("%s: pseudonym-key statement grants %s too", fn.LogicalID, a)
			}
		}
	}
}
