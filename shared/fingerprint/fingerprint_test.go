package fingerprint_test

import (
	"context"
	"strings"
	"testing"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/fingerprint"
)

func TestEqual(t *testing.T) {
	t.Parallel()
	fp := "v1:" + strings.Repeat("A", 43)
	tests := []struct {
		a, b string
		want bool
	}{
		{fp, fp, true},
		{fp, "v1:" + strings.Repeat("B", 43), false},
		{"", "", false},
		{"v1:", "v1:", false},
		{"x" + fp[1:], "x" + fp[1:], false},
		{fp, "", false},
	}
	for _, tt := range tests {
		if got := fingerprint.Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestOf runs against KMS (moto) with the template's AccountKey.
func TestOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := stacktest.New(t)
	k := fingerprint.New(env.Clients.KMS, env.Prov.Attr("AccountKey", "Arn"))
	const acct, other = "5b10ac8d82e05b22cc7d4ef5", "712020:9d3b1c2e-aaaa-bbbb-cccc-0123456789ab"
	of := func(k *fingerprint.Keyer, conn, acct string) string {
		t.Helper()
		fp, err := k.Of(ctx, conn, acct)
		if err != nil {
			t.Fatalf("Of(%q, %q) = %v", conn, acct, err)
		}
		return fp
	}
	a := of(k, "conn1", acct)
	if !strings.HasPrefix(a, "v1:") || strings.Contains(a, acct) {
		t.Errorf("Of = %q, want a v1 MAC that does not contain the account id", a)
	}
	if b := of(k, "conn1", acct); !fingerprint.Equal(a, b) {
		t.Errorf("Of is not deterministic: %q then %q", a, b)
	}
	if b := of(k, "conn1", other); fingerprint.Equal(a, b) {
		t.Errorf("two accounts have the same fingerprint")
	}
	if b := of(k, "conn2", acct); fingerprint.Equal(a, b) {
		t.Errorf("one account has the same fingerprint in two connections (linkable)")
	}
	// Another deployment has its own key: the same account and connection id give an unrelated fingerprint.
	env2 := stacktest.New(t)
	if b := of(fingerprint.New(env2.Clients.KMS, env2.Prov.Attr("AccountKey", "Arn")), "conn1", acct); fingerprint.Equal(a, b) {
		t.Errorf("two deployments give the same fingerprint (linkable across deployments)")
	}
	// The data key cannot make fingerprints: an HMAC needs the HMAC key.
	if _, err := fingerprint.New(env.Clients.KMS, env.KeyARN).Of(ctx, "conn1", acct); err == nil {
		t.Errorf("Of with the symmetric data key succeeded, want an error")
	}
	for _, in := range [][2]string{{"", acct}, {"conn1", ""}} {
		if _, err := k.Of(ctx, in[0], in[1]); err == nil {
			t.Errorf("Of(%q, %q) succeeded, want an error", in[0], in[1])
		}
	}
}
