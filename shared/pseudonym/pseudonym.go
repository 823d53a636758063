// Package pseudonym turns an Atlassian account id into a name that stays the same for the same person across all
// of one connection's exports, cannot be linked across connections, and cannot be reversed: HMAC-SHA256 of the
// account id under a per-connection 256-bit secret.
//
// The secret is a KMS data key (GenerateDataKey, AES_256: 32 random bytes from KMS) whose ciphertext is stored at
// pk CONN#<connectionId>, sk PSEUDOKEY, so it is erased with the connection's partition. KMS binds the ciphertext
// to its connection with the encryption context {connectionId, purpose: "pseudonym-key"}: an item copied into
// another connection's partition does not decrypt there. The first use creates it with a conditional write, so two
// first uses at once agree on one secret.
package pseudonym

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"jiraexport/shared/table"
)

// Mode is how a person appears in exported content (a connector option).
type Mode string

const (
	// ModeDisplayName shows the person's display name only (the default).
	ModeDisplayName Mode = "displayName"
	// ModePseudonym shows Pseudonymizer.Person's output instead.
	ModePseudonym Mode = "pseudonym"
)

// ParseMode accepts "" (the default, display name) and the two modes.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeDisplayName:
		return ModeDisplayName, nil
	case ModePseudonym:
		return ModePseudonym, nil
	}
	return "", fmt.Errorf("pseudonym: unknown people mode %q (want %q or %q)", s, ModeDisplayName, ModePseudonym)
}

// Errors callers branch on.
var (
	// ErrNotActive: the connection is not active (erasing, disconnected or gone), so no secret is created for it.
	ErrNotActive = errors.New("pseudonym: connection is not active")
)

// Item layout (pk CONN#<connectionId>, sk PSEUDOKEY): type S "pseudokey", edk B (KMS ciphertext of the 32-byte
// secret), createdAt N (Unix ms), connId S.
const (
	sk       = table.SKPseudoKey
	itemType = "pseudokey"
	purpose  = "pseudonym-key"
	keyBytes = 32
	// Prefix starts every pseudonym.
	Prefix = "person-"
)

// encryptionContext binds the secret to its connection: KMS refuses to decrypt it under another connection id,
// and CloudTrail shows which connection each decryption was for.
func encryptionContext(connID string) map[string]string {
	return map[string]string{"connectionId": connID, "purpose": purpose}
}

// Store loads and creates per-connection pseudonym secrets. It is safe for concurrent use.
type Store struct {
	t     *table.Table
	kms   *kms.Client
	keyID string
}

// NewStore returns a Store over the table name with secrets encrypted under the KMS key keyID (the stack's
// KMS_KEY_ID).
func NewStore(db table.Client, kmsc *kms.Client, name, keyID string) *Store {
	return &Store{t: table.New(db, name), kms: kmsc, keyID: keyID}
}

func itemKey(connID string) table.Item { return table.Key(table.ConnPK(connID), sk) }

// For returns the connection's Pseudonymizer, creating its secret on first use. Creation is refused with
// ErrNotActive unless the connection's META item says it is active, so a run racing the purge cannot leave a
// secret behind the erasure.
func (s *Store) For(ctx context.Context, connID string) (*Pseudonymizer, error) {
	if connID == "" {
		return nil, errors.New("pseudonym: empty connection id")
	}
	if p, err := s.load(ctx, connID); err == nil || !errors.Is(err, errNoKey) {
		return p, err
	}
	dk, err := s.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           kmstypes.DataKeySpecAes256,
		EncryptionContext: encryptionContext(connID),
	})
	if err != nil {
		return nil, fmt.Errorf("pseudonym: generate secret for %s: %w", connID, err)
	}
	item := itemKey(connID)
	item["type"] = table.S(itemType)
	item["edk"] = table.B(dk.CiphertextBlob)
	item["createdAt"] = table.Millis(s.t.Now())
	item["connId"] = table.S(connID)
	meta := table.Key(table.ConnPK(connID), table.SKMeta)
	_, err = s.t.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: s.t.TableName(), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{ConditionCheck: &ddbtypes.ConditionCheck{TableName: s.t.TableName(), Key: meta,
			ConditionExpression:       aws.String("#st = :active"),
			ExpressionAttributeNames:  map[string]string{"#st": "status"},
			ExpressionAttributeValues: table.Item{":active": table.S("active")}}},
	}})
	if err == nil {
		p := newPseudonymizer(dk.Plaintext)
		clear(dk.Plaintext)
		return p, nil
	}
	clear(dk.Plaintext)
	if r := table.Cancelled(err); len(r) == 2 {
		if r.FailedAt(1) {
			return nil, fmt.Errorf("pseudonym: %s: %w", connID, ErrNotActive)
		}
		if r.FailedAt(0) {
			// Another first use won the race: everyone uses its secret.
			return s.load(ctx, connID)
		}
	}
	return nil, fmt.Errorf("pseudonym: store secret for %s: %w", connID, err)
}

var errNoKey = errors.New("pseudonym: no secret yet")

func (s *Store) load(ctx context.Context, connID string) (*Pseudonymizer, error) {
	out, err := s.t.DB().GetItem(ctx, &dynamodb.GetItemInput{TableName: s.t.TableName(), Key: itemKey(connID),
		ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("edk")})
	if err != nil {
		return nil, fmt.Errorf("pseudonym: read secret for %s: %w", connID, err)
	}
	if out.Item == nil {
		return nil, errNoKey
	}
	edk, ok := out.Item["edk"].(*ddbtypes.AttributeValueMemberB)
	if !ok || len(edk.Value) == 0 {
		return nil, fmt.Errorf("pseudonym: secret item for %s has no ciphertext", connID)
	}
	pt, err := s.kms.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    edk.Value,
		EncryptionContext: encryptionContext(connID),
		KeyId:             aws.String(s.keyID), // refuse a ciphertext under any other key
	})
	if err != nil {
		return nil, fmt.Errorf("pseudonym: decrypt secret for %s: %w", connID, err)
	}
	defer clear(pt.Plaintext)
	if len(pt.Plaintext) != keyBytes {
		return nil, fmt.Errorf("pseudonym: secret for %s has %d bytes, want %d", connID, len(pt.Plaintext), keyBytes)
	}
	return newPseudonymizer(pt.Plaintext), nil
}

// Pseudonymizer names people of one connection. It is safe for concurrent use and holds its secret only in memory.
type Pseudonymizer struct {
	key []byte
}

func newPseudonymizer(key []byte) *Pseudonymizer {
	return &Pseudonymizer{key: append([]byte(nil), key...)}
}

// base32 without padding, lower case: 10 bytes are exactly 16 characters.
var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Person returns "person-" and the lower-case base32 of the first 10 bytes (80 bits) of HMAC-SHA256(secret,
// accountID). 80 bits keep collisions negligible for any connection's population (about 2^-40 at a million
// people) while staying short enough to read.
func (p *Pseudonymizer) Person(accountID string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(accountID))
	return Prefix + strings.ToLower(enc.EncodeToString(m.Sum(nil)[:10]))
}
