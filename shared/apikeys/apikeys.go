// Package apikeys issues, authenticates and revokes the API keys a connection's tools present as
// `Authorization: Bearer jxk_...`.
//
// A key is "jxk_" + 256 random bits in base64url, so a leaked key is recognisable (secret scanners, the log
// redactor) and cannot be guessed. Only its SHA-256 is stored: a fast hash is right for a high-entropy secret (there
// is nothing to brute-force), and it lets Authenticate find the key with one GetItem on APIKEY#<hash>. Each key also
// has a listing item CONN#<connId>/KEY#<keyId> with its name, last four characters and hash, so the connection's
// keys can be listed, revoked one by one and all found again by disconnect and purge.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"

	"jiraexport/shared/backoff"
	"jiraexport/shared/connections"
)

// Prefix starts every key.
const Prefix = "jxk_"

// keyBytes is the key's entropy; encodedLen its base64url length without padding.
const (
	keyBytes   = 32
	encodedLen = 43
	// KeyLen is the length of a whole key.
	KeyLen = len(Prefix) + encodedLen
)

// Item types.
const (
	ItemTypeHash    = "apikey"
	ItemTypeListing = "apikey_listing"
	ItemTypeCount   = "apikey_count"
)

// MaxActive is how many unrevoked keys a connection may hold. The count item CONN#<connId>/KEYS is updated in the
// same transaction that issues or revokes a key, so concurrent issues cannot exceed it.
const MaxActive = 20

// Key describes an issued key. It never holds the plaintext.
type Key struct {
	ID           string
	ConnectionID string
	Name         string
	// Hint is the key's last four characters, to tell keys apart in a list.
	Hint      string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Errors callers branch on.
var (
	// ErrInvalid covers a missing, malformed, unknown or revoked key alike: callers answer 401 the same way, so
	// a caller learns nothing about which keys exist.
	ErrInvalid = errors.New("invalid API key")
	// ErrNotFound is returned by Revoke for a key id the connection does not have.
	ErrNotFound = errors.New("API key not found")
	// ErrNoConnection is returned by Issue when the connection does not exist or is disconnected.
	ErrNoConnection = errors.New("connection not found")
	// ErrTooMany is returned by Issue when the connection already has MaxActive unrevoked keys.
	ErrTooMany = errors.New("too many active API keys")
)

// Store keeps API keys in the single table.
type Store struct{ t *table.Table }

// NewStore returns a Store on the table name (table.WithClock sets the clock that stamps items, for tests).
func NewStore(db table.Client, name string, opts ...table.Option) *Store {
	return &Store{t: table.New(db, name, opts...)}
}

type hashItem struct {
	PK           string `dynamodbav:"pk"`
	SK           string `dynamodbav:"sk"`
	Type         string `dynamodbav:"type"`
	V            int64  `dynamodbav:"v"`
	Hash         string `dynamodbav:"hash"`
	KeyID        string `dynamodbav:"keyId"`
	ConnectionID string `dynamodbav:"connId"`
	Name         string `dynamodbav:"name"`
	Hint         string `dynamodbav:"hint"`
	CreatedAt    string `dynamodbav:"createdAt"`
}

type listingItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Type      string `dynamodbav:"type"`
	V         int64  `dynamodbav:"v"`
	KeyID     string `dynamodbav:"keyId"`
	Name      string `dynamodbav:"name"`
	Hint      string `dynamodbav:"hint"`
	Hash      string `dynamodbav:"hash"`
	CreatedAt string `dynamodbav:"createdAt"`
	RevokedAt string `dynamodbav:"revokedAt,omitempty"`
}

func hashPK(hash string) string { return table.APIKeyPK(hash) }

const hashSK = table.SKAPIKey

// countSK is the sort key of the connection's active-key count item.
const countSK = table.SKKeys

func connPK(connID string) string { return table.ConnPK(connID) }

func listingSK(keyID string) string { return table.KeySK(keyID) }

// digest returns the SHA-256 of the key as raw bytes and lower-case hex.
func digest(plaintext string) ([]byte, string) {
	sum := sha256.Sum256([]byte(plaintext))
	return sum[:], hex.EncodeToString(sum[:])
}

// WellFormed reports whether s has the shape of a key (prefix, length, alphabet). It says nothing about whether
// the key exists.
func WellFormed(s string) bool {
	if len(s) != KeyLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	for _, c := range s[len(Prefix):] {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func newKeyID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// IssueItems mints a key for connID and returns the transaction items that store it, without writing them: the
// OAuth callback writes them in the same transaction that creates the connection, so neither exists without the
// other. The items are the hash put, the listing put and the active-key count increment (refused at MaxActive),
// in that order. The plaintext is returned once and never stored.
func (s *Store) IssueItems(connID, name string) (plaintext string, k *Key, items []types.TransactWriteItem, err error) {
	if connID == "" {
		return "", nil, nil, errors.New("issue API key: empty connection id")
	}
	raw := make([]byte, keyBytes)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (it crashes the program instead)
	plaintext = Prefix + base64.RawURLEncoding.EncodeToString(raw)
	_, hash := digest(plaintext)
	k = &Key{
		ID: newKeyID(), ConnectionID: connID, Name: name, Hint: plaintext[len(plaintext)-4:],
		CreatedAt: s.t.Now().UTC(),
	}
	hv, err := attributevalue.MarshalMap(hashItem{
		PK: hashPK(hash), SK: hashSK, Type: ItemTypeHash, V: 1, Hash: hash, KeyID: k.ID, ConnectionID: connID,
		Name: name, Hint: k.Hint, CreatedAt: table.FormatTime(k.CreatedAt),
	})
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode API key: %w", err)
	}
	lv, err := attributevalue.MarshalMap(listingItem{
		PK: connPK(connID), SK: listingSK(k.ID), Type: ItemTypeListing, V: 1, KeyID: k.ID, Name: name, Hint: k.Hint,
		Hash: hash, CreatedAt: table.FormatTime(k.CreatedAt),
	})
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode API key listing: %w", err)
	}
	cond := aws.String("attribute_not_exists(pk)")
	items = []types.TransactWriteItem{
		{Put: &types.Put{TableName: s.t.TableName(), Item: hv, ConditionExpression: cond}},
		{Put: &types.Put{TableName: s.t.TableName(), Item: lv, ConditionExpression: cond}},
		{Update: &types.Update{
			TableName:                s.t.TableName(),
			Key:                      s.countKey(connID),
			UpdateExpression:         aws.String("SET #type = :type, #n = if_not_exists(#n, :zero) + :one, v = if_not_exists(v, :zero) + :one"),
			ConditionExpression:      aws.String("attribute_not_exists(#n) OR #n < :max"),
			ExpressionAttributeNames: map[string]string{"#type": "type", "#n": "n"},
			ExpressionAttributeValues: table.Item{
				":type": table.S(ItemTypeCount),
				":zero": table.N(0),
				":one":  table.N(1),
				":max":  table.N(MaxActive),
			},
		}},
	}
	return plaintext, k, items, nil
}

func (s *Store) countKey(connID string) table.Item {
	return table.Key(connPK(connID), countSK)
}

// Issue mints and stores a new key for an existing, not disconnected connection (the transaction checks it). It
// returns ErrTooMany when the connection already has MaxActive unrevoked keys. The plaintext is returned once and
// never stored.
func (s *Store) Issue(ctx context.Context, connID, name string) (string, *Key, error) {
	plaintext, k, items, err := s.IssueItems(connID, name)
	if err != nil {
		return "", nil, err
	}
	countAt, connAt := len(items)-1, len(items)
	items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                s.t.TableName(),
		Key:                      table.Key(connPK(connID), connections.MetaSK),
		ConditionExpression:      aws.String("attribute_exists(pk) AND #st <> :disc"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: table.Item{
			":disc": table.S(string(connections.StatusDisconnected)),
		},
	}})
	// Concurrent issues for one connection touch the same count item, and DynamoDB cancels all but one of the
	// overlapping transactions; retrying them is what makes the limit answer "too many" rather than fail.
	for attempt := 0; ; attempt++ {
		_, err := s.t.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return plaintext, k, nil
		}
		r := table.Cancelled(err)
		if r == nil {
			return "", nil, fmt.Errorf("issue API key: %w", err)
		}
		switch {
		case r.FailedAt(connAt):
			return "", nil, fmt.Errorf("issue API key for connection %s: %w", connID, ErrNoConnection)
		case r.FailedAt(countAt):
			return "", nil, fmt.Errorf("issue API key for connection %s: %w", connID, ErrTooMany)
		case attempt < issueAttempts-1 && r.Conflicted():
			if err := pause(ctx, attempt); err != nil {
				return "", nil, fmt.Errorf("issue API key: %w", err)
			}
		default:
			return "", nil, fmt.Errorf("issue API key: %w", err)
		}
	}
}

const issueAttempts = 10

// conflictBackoff spaces retries of a transaction that lost a race: short, because the conflicting writer
// finishes within milliseconds.
func conflictBackoff() backoff.Policy {
	return backoff.Policy{Base: 10 * time.Millisecond, Max: 320 * time.Millisecond, Retries: issueAttempts - 1}
}

// pause waits a jittered, growing delay before retry attempt+1, or until ctx ends.
func pause(ctx context.Context, attempt int) error { return conflictBackoff().Wait(ctx, attempt, 0) }

// Authenticate returns the key plaintext belongs to, or ErrInvalid. Other errors are infrastructure failures
// (answer 5xx, not 401).
func (s *Store) Authenticate(ctx context.Context, plaintext string) (*Key, error) {
	if !WellFormed(plaintext) {
		return nil, ErrInvalid
	}
	sum, hash := digest(plaintext)
	// A revocation must take effect at once: Get reads consistently.
	var it hashItem
	found, err := s.t.Get(ctx, hashPK(hash), hashSK, &it)
	if err != nil {
		return nil, fmt.Errorf("authenticate API key: %w", err)
	}
	if !found {
		return nil, ErrInvalid
	}
	stored, err := hex.DecodeString(it.Hash)
	// The lookup already matched the hash through the key; comparing the stored hash in constant time as well
	// keeps the decision itself free of data-dependent timing.
	if err != nil || subtle.ConstantTimeCompare(stored, sum) != 1 {
		return nil, ErrInvalid
	}
	return &Key{
		ID: it.KeyID, ConnectionID: it.ConnectionID, Name: it.Name, Hint: it.Hint, CreatedAt: table.ParseTime(it.CreatedAt),
	}, nil
}

// listing returns the connection's listing items.
func (s *Store) listing(ctx context.Context, connID string) ([]listingItem, error) {
	var out []listingItem
	err := s.t.EachPage(ctx, s.t.PrefixQuery(connPK(connID), table.PrefixKey), func(page []table.Item) error {
		var items []listingItem
		if err := attributevalue.UnmarshalListOfMaps(page, &items); err != nil {
			return fmt.Errorf("decode API keys: %w", err)
		}
		out = append(out, items...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return out, nil
}

// List returns the connection's keys, revoked ones included, oldest first.
func (s *Store) List(ctx context.Context, connID string) ([]Key, error) {
	items, err := s.listing(ctx, connID)
	if err != nil {
		return nil, err
	}
	keys := make([]Key, 0, len(items))
	for _, it := range items {
		k := Key{ID: it.KeyID, ConnectionID: connID, Name: it.Name, Hint: it.Hint, CreatedAt: table.ParseTime(it.CreatedAt)}
		if it.RevokedAt != "" {
			t := table.ParseTime(it.RevokedAt)
			k.RevokedAt = &t
		}
		keys = append(keys, k)
	}
	// Ids are random, so the query's order is not creation order.
	slices.SortStableFunc(keys, func(a, b Key) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return keys, nil
}

// Revoke stops a key from authenticating, at once. The hash item is deleted (nothing left to match) and the
// listing keeps the key's name, hint and revokedAt for the user's record. Revoking a revoked key is a no-op;
// an unknown id is ErrNotFound.
func (s *Store) Revoke(ctx context.Context, connID, keyID string) error {
	var it listingItem
	found, err := s.t.Get(ctx, connPK(connID), listingSK(keyID), &it)
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	if !found {
		return ErrNotFound
	}
	if it.RevokedAt != "" {
		return nil
	}
	items := []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:           s.t.TableName(),
			Key:                 table.Key(connPK(connID), listingSK(keyID)),
			UpdateExpression:    aws.String("SET revokedAt = :now ADD v :one"),
			ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(revokedAt)"),
			ExpressionAttributeValues: table.Item{
				":now": table.S(table.FormatTime(s.t.Now())),
				":one": table.N(1),
			},
		}},
		{Delete: &types.Delete{
			TableName: s.t.TableName(),
			Key:       table.Key(hashPK(it.Hash), hashSK),
		}},
		{Update: &types.Update{
			TableName:                s.t.TableName(),
			Key:                      s.countKey(connID),
			UpdateExpression:         aws.String("SET #n = #n - :one, v = v + :one"),
			ConditionExpression:      aws.String("#n > :zero"),
			ExpressionAttributeNames: map[string]string{"#n": "n"},
			ExpressionAttributeValues: table.Item{
				":one":  table.N(1),
				":zero": table.N(0),
			},
		}},
	}
	for attempt := 0; ; attempt++ {
		_, err = s.t.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		r := table.Cancelled(err)
		if err == nil || r == nil {
			break
		}
		switch {
		case r.FailedAt(0):
			return nil // revoked concurrently: the other revoke released the count
		case r.FailedAt(2) && len(items) == 3:
			// A key older than the count item: there is nothing to release.
			items = items[:2]
		case attempt < issueAttempts-1 && r.Conflicted():
			if err := pause(ctx, attempt); err != nil {
				return fmt.Errorf("revoke API key: %w", err)
			}
		default:
			return fmt.Errorf("revoke API key: %w", err)
		}
	}
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	return nil
}

// DeleteAll deletes every key of the connection, hash and listing items alike, and the active-key count
// (disconnect, purge). It is idempotent: the hash item goes first, so an interrupted run leaves a listing that
// finds the rest next time.
func (s *Store) DeleteAll(ctx context.Context, connID string) error {
	items, err := s.listing(ctx, connID)
	if err != nil {
		return err
	}
	for _, it := range items {
		for _, k := range []table.Item{
			table.Key(hashPK(it.Hash), hashSK),
			table.Key(connPK(connID), listingSK(it.KeyID)),
		} {
			if _, err := s.t.DB().DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.t.TableName(), Key: k}); err != nil {
				return fmt.Errorf("delete API key: %w", err)
			}
		}
	}
	if _, err := s.t.DB().DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.t.TableName(), Key: s.countKey(connID)}); err != nil {
		return fmt.Errorf("delete API key count: %w", err)
	}
	return nil
}
