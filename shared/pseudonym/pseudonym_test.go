package pseudonym

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"jiraexport/infra/stacktest"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"", ModeDisplayName, false},
		{"displayName", ModeDisplayName, false},
		{"pseudonym", ModePseudonym, false},
		{"accountId", "", true},
		{"Pseudonym", "", true},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

type fixture struct {
	env *stacktest.Env
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local AWS stack")
	}
	return &fixture{env: stacktest.New(t)}
}

// store returns a Store with its own SDK clients, as a separate Lambda instance would have.
func (f *fixture) store() *Store {
	return NewStore(dynamodb.NewFromConfig(f.env.AWS), kms.NewFromConfig(f.env.AWS), f.env.Table, f.env.KeyARN)
}

func (f *fixture) connection(t *testing.T, connID, status string) {
	t.Helper()
	_, err := f.env.Clients.DynamoDB.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(f.env.Table),
		Item: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "CONN#" + connID}, "sk": &ddbtypes.AttributeValueMemberS{Value: "META"},
			"status": &ddbtypes.AttributeValueMemberS{Value: status},
		}})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) item(t *testing.T, connID string) map[string]ddbtypes.AttributeValue {
	t.Helper()
	out, err := f.env.Clients.DynamoDB.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(f.env.Table),
		Key: itemKey(connID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

var format = regexp.MustCompile(`^person-[a-z2-7]{16}$`)

const (
	alice = "5b10ac8d82e05b22cc7d4ef5"
	bob   = "712020:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)

func TestStableWithinConnection(t *testing.T) {
	f := newFixture(t)
	f.connection(t, "connA", "active")
	p1, err := f.store().For(t.Context(), "connA")
	if err != nil {
		t.Fatalf("For() error = %v", err)
	}
	a1, b1 := p1.Person(alice), p1.Person(bob)
	if !format.MatchString(a1) || !format.MatchString(b1) {
		t.Fatalf("Person() = %q, %q; want person-<16 base32 chars>", a1, b1)
	}
	if a1 == b1 {
		t.Fatalf("two people share pseudonym %q", a1)
	}
	if strings.Contains(a1, alice) || strings.Contains(strings.ToLower(b1), "712020") {
		t.Fatal("pseudonym carries the account id")
	}
	if p1.Person(alice) != a1 {
		t.Error("Person() differs between two calls")
	}
	// Another store instance (a later export run, another Lambda) reads the same secret.
	p2, err := f.store().For(t.Context(), "connA")
	if err != nil {
		t.Fatalf("second For() error = %v", err)
	}
	if got := p2.Person(alice); got != a1 {
		t.Errorf("Person(alice) on a new store = %q, want %q", got, a1)
	}
	it := f.item(t, "connA")
	if it == nil || it["connId"].(*ddbtypes.AttributeValueMemberS).Value != "connA" {
		t.Fatalf("PSEUDOKEY item = %v, want one carrying connId", it)
	}
	if edk := it["edk"].(*ddbtypes.AttributeValueMemberB).Value; len(edk) <= keyBytes {
		t.Errorf("stored edk has %d bytes: not a KMS ciphertext", len(edk))
	}
}

func TestUnlinkableAcrossConnections(t *testing.T) {
	f := newFixture(t)
	f.connection(t, "connA", "active")
	f.connection(t, "connB", "active")
	s := f.store()
	pa, err := s.For(t.Context(), "connA")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := s.For(t.Context(), "connB")
	if err != nil {
		t.Fatal(err)
	}
	if pa.Person(alice) == pb.Person(alice) {
		t.Errorf("Person(alice) is %q in both connections", pa.Person(alice))
	}
}

// A PSEUDOKEY item copied into another connection's partition must not decrypt there (encryption context), so a
// mix-up or a malicious copy cannot make two connections' pseudonyms linkable.
func TestCopiedItemDoesNotDecrypt(t *testing.T) {
	f := newFixture(t)
	f.connection(t, "connA", "active")
	f.connection(t, "connB", "active")
	if _, err := f.store().For(t.Context(), "connA"); err != nil {
		t.Fatal(err)
	}
	it := f.item(t, "connA")
	it["pk"] = &ddbtypes.AttributeValueMemberS{Value: "CONN#connB"}
	it["connId"] = &ddbtypes.AttributeValueMemberS{Value: "connB"}
	if _, err := f.env.Clients.DynamoDB.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(f.env.Table), Item: it}); err != nil {
		t.Fatal(err)
	}
	p, err := f.store().For(t.Context(), "connB")
	if err == nil {
		t.Fatalf("For(connB) with connA's copied secret = %v, want a decryption error", p)
	}
}

func TestConcurrentFirstUseAgrees(t *testing.T) {
	f := newFixture(t)
	f.connection(t, "connC", "active")
	const n = 8
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := f.store().For(t.Context(), "connC")
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = p.Person(alice)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("For() #%d error = %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("concurrent first uses disagree: %q vs %q", got[i], got[0])
		}
	}
	p, err := f.store().For(t.Context(), "connC")
	if err != nil || p.Person(alice) != got[0] {
		t.Fatalf("after the race For() = %v; pseudonym differs from the agreed one", err)
	}
}

func TestInactiveConnectionGetsNoSecret(t *testing.T) {
	f := newFixture(t)
	f.connection(t, "connE", "erasing")
	_, err := f.store().For(t.Context(), "connE")
	if !errors.Is(err, ErrNotActive) {
		t.Fatalf("For(erasing connection) error = %v, want ErrNotActive", err)
	}
	if _, err := f.store().For(t.Context(), "connMissing"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("For(unknown connection) error = %v, want ErrNotActive", err)
	}
	if it := f.item(t, "connE"); it != nil {
		t.Errorf("PSEUDOKEY item created for an erasing connection: %v", it)
	}
}
