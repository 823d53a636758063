// Package oauthstate keeps the short-lived secrets of the OAuth authorisation flow: the `state` that ties
// Atlassian's callback to the authorize request that started it, and the one-time re-authorisation tickets that
// bind a new consent to an existing connection.
//
// A state is 256 random bits. Only its SHA-256 is stored (pk STATE#<hash>, sk STATE), with a 10-minute `ttl`
// that is also enforced on read because DynamoDB deletes expired items lazily. It is single use (a conditional
// update marks it used; the used item stays until its ttl so a replay is recognised as one), and it is bound to
// the browser that started the flow: a separate random nonce travels in a cookie and only its hash is stored
// with the state, so a state lifted from a URL (logs, history, a phishing link) is useless in another browser.
//
// Re-authorisation: the connectors API, having authenticated the caller's API key, calls CreateReauth and hands
// the user the link ReauthURL returns. The ticket in that link is single use, expires in 10 minutes and carries
// no connection id: the binding to the connection lives only server-side (pk STATE#<hash of ticket>, sk REAUTH).
// GET /oauth/authorize?reauth=<ticket> only looks at it (PeekReauth), so a link-preview bot or a mail scanner
// that opens the link spends nothing; the page's POST redeems it (RedeemReauth) and starts an ordinary state
// bound to that connection.
package oauthstate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

// TTL is how long a state or a re-authorisation ticket lives.
const TTL = 10 * time.Minute

// Item types.
const (
	ItemTypeState  = "oauth_state"
	ItemTypeReauth = "oauth_reauth"
)

const (
	skState  = table.SKState
	skReauth = table.SKReauth
)

// Errors callers branch on (each gets its own explanation page).
var (
	ErrUnknown   = errors.New("unknown OAuth state") // never issued, malformed, or expired long ago and deleted
	ErrExpired   = errors.New("OAuth state expired")
	ErrUsed      = errors.New("OAuth state already used")
	ErrForeign   = errors.New("OAuth state belongs to another browser")
	ErrNoSession = errors.New("no OAuth session cookie")
)

// secretLen is the length of every secret this package issues: 32 random bytes in unpadded base64url.
const secretLen = 43

// Flow is what a verified state says about the flow it started.
type Flow struct {
	// ConnectionID is set when the flow re-authorises an existing connection; empty for a new connection.
	ConnectionID string
	CreatedAt    time.Time
}

// Store keeps states and tickets in the single table.
type Store struct{ t *table.Table }

// NewStore returns a Store on the table name (table.WithClock sets the clock that stamps items, for tests).
func NewStore(db table.Client, name string, opts ...table.Option) *Store {
	return &Store{t: table.New(db, name, opts...)}
}

type item struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Type      string `dynamodbav:"type"`
	V         int64  `dynamodbav:"v"`
	TTL       int64  `dynamodbav:"ttl"`
	CreatedAt int64  `dynamodbav:"createdAt"` // epoch milliseconds
	NonceHash string `dynamodbav:"nonceHash,omitempty"`
	ConnID    string `dynamodbav:"connId,omitempty"`
	UsedAt    int64  `dynamodbav:"usedAt,omitempty"`
	// A state or ticket bound to a connection is listed in the "due" index under ConnGSIPK(connID), so erasing
	// the connection finds it without a scan.
	GSI1PK string `dynamodbav:"gsi1pk,omitempty"`
	GSI1SK string `dynamodbav:"gsi1sk,omitempty"`
}

// ConnGSIPK is the "due" index partition listing the states and tickets bound to connection connID.
func ConnGSIPK(connID string) string { return table.StatesGSIPK(connID) }

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s has the shape of a secret this package issues. Anything else is refused before
// it reaches the table.
func WellFormed(s string) bool {
	if len(s) != secretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBase64URL(s[i]) {
			return false
		}
	}
	return true
}

// isBase64URL reports whether c is in the URL-safe base64 alphabet (RFC 4648 §5).
func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func (s *Store) put(ctx context.Context, sk, secret, nonce, connID string) error {
	now := s.t.Now()
	it := item{
		PK: table.StatePK(hashOf(secret)), SK: sk, V: 1, TTL: table.TTL(now.Add(TTL)), CreatedAt: now.UnixMilli(),
		ConnID: connID, Type: ItemTypeState,
	}
	if sk == skReauth {
		it.Type = ItemTypeReauth
	}
	if connID != "" {
		it.GSI1PK, it.GSI1SK = ConnGSIPK(connID), strconv.FormatInt(it.CreatedAt, 10)
	}
	if nonce != "" {
		it.NonceHash = hashOf(nonce)
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return fmt.Errorf("encode OAuth state: %w", err)
	}
	_, err = s.t.DB().PutItem(ctx, &dynamodb.PutItemInput{
		TableName: s.t.TableName(), Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err != nil {
		return fmt.Errorf("store OAuth state: %w", err)
	}
	return nil
}

// Begin starts an authorisation: it returns the state for Atlassian's authorize URL and the nonce for the
// browser's cookie. connID is empty for a new connection, or the connection a redeemed ticket re-authorises.
func (s *Store) Begin(ctx context.Context, connID string) (state, nonce string, err error) {
	state, nonce = newSecret(), newSecret()
	if err := s.put(ctx, skState, state, nonce, connID); err != nil {
		return "", "", err
	}
	return state, nonce, nil
}

// Consume verifies state against the browser's cookie nonce and marks it used, in one conditional write. It
// returns ErrNoSession, ErrUnknown, ErrExpired, ErrUsed or ErrForeign when the callback must be refused;
// ErrExpired and ErrUsed only for the browser the state was issued to (any other gets ErrForeign). A refused
// state stays usable by its own browser (unless used or expired), so a forged callback cannot burn a user's flow.
func (s *Store) Consume(ctx context.Context, state, nonce string) (*Flow, error) {
	if nonce == "" {
		return nil, ErrNoSession
	}
	if !WellFormed(state) {
		return nil, ErrUnknown
	}
	if !WellFormed(nonce) {
		return nil, ErrForeign
	}
	return s.consume(ctx, skState, state, hashOf(nonce))
}

func (s *Store) consume(ctx context.Context, sk, secret, nonceHash string) (*Flow, error) {
	now := s.t.Now()
	cond := "attribute_exists(pk) AND attribute_not_exists(usedAt) AND #ttl > :now"
	vals := table.Item{
		":now":  table.N(now.Unix()),
		":used": table.N(now.UnixMilli()),
		":one":  table.N(1),
	}
	if nonceHash != "" {
		cond += " AND nonceHash = :nh"
		vals[":nh"] = table.S(nonceHash)
	}
	out, err := s.t.DB().UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.t.TableName(),
		Key:                                 table.Key(table.StatePK(hashOf(secret)), sk),
		UpdateExpression:                    aws.String("SET usedAt = :used ADD v :one"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues:           vals,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		old, failed := table.ConditionFailed(err)
		if !failed {
			return nil, fmt.Errorf("consume OAuth state: %w", err)
		}
		return nil, classify(old, now, nonceHash)
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return nil, fmt.Errorf("decode OAuth state: %w", err)
	}
	return &Flow{ConnectionID: it.ConnID, CreatedAt: time.UnixMilli(it.CreatedAt)}, nil
}

// classify explains a failed consume from the item as it was.
func classify(old table.Item, now time.Time, nonceHash string) error {
	if old == nil {
		return ErrUnknown
	}
	var it item
	if err := attributevalue.UnmarshalMap(old, &it); err != nil {
		return ErrUnknown
	}
	// Another browser's state is foreign whatever its stage, so ErrUsed and ErrExpired always speak of the
	// caller's own flow (the callback clears its cookie on them, which a foreign state must not cause).
	switch {
	case nonceHash != "" && it.NonceHash != nonceHash:
		return ErrForeign
	case it.UsedAt != 0:
		return ErrUsed
	case it.TTL <= now.Unix():
		return ErrExpired
	}
	return ErrUnknown
}

// CreateReauth returns a one-time ticket that lets whoever holds it within TTL re-authorise connection connID.
// The connectors API calls it only after authenticating the connection's API key, and gives the user
// ReauthURL(base, ticket). The ticket itself carries nothing: the connection id is stored with its hash.
func (s *Store) CreateReauth(ctx context.Context, connID string) (ticket string, err error) {
	if connID == "" {
		return "", errors.New("create re-authorisation ticket: empty connection id")
	}
	ticket = newSecret()
	if err := s.put(ctx, skReauth, ticket, "", connID); err != nil {
		return "", err
	}
	return ticket, nil
}

// ReauthURL is the link to give the user: baseURL is the HTTP API's public base URL (PUBLIC_BASE_URL, or
// "https://" + the request's domain name when that is empty).
func ReauthURL(baseURL, ticket string) string {
	return strings.TrimRight(baseURL, "/") + "/oauth/authorize?" + url.Values{"reauth": {ticket}}.Encode()
}

// PeekReauth returns the connection a ticket re-authorises without using it up. It returns ErrUnknown,
// ErrExpired or ErrUsed as RedeemReauth would.
func (s *Store) PeekReauth(ctx context.Context, ticket string) (connID string, err error) {
	if !WellFormed(ticket) {
		return "", ErrUnknown
	}
	out, err := s.t.DB().GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      s.t.TableName(),
		Key:            table.Key(table.StatePK(hashOf(ticket)), skReauth),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("read re-authorisation ticket: %w", err)
	}
	if out.Item == nil {
		return "", ErrUnknown
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil || it.ConnID == "" {
		return "", ErrUnknown
	}
	switch {
	case it.UsedAt != 0:
		return "", ErrUsed
	case it.TTL <= s.t.Now().Unix():
		return "", ErrExpired
	}
	return it.ConnID, nil
}

// RedeemReauth uses up a ticket and returns the connection it re-authorises. It returns ErrUnknown, ErrExpired
// or ErrUsed when the ticket cannot be used.
func (s *Store) RedeemReauth(ctx context.Context, ticket string) (connID string, err error) {
	if !WellFormed(ticket) {
		return "", ErrUnknown
	}
	f, err := s.consume(ctx, skReauth, ticket, "")
	if err != nil {
		return "", err
	}
	if f.ConnectionID == "" {
		return "", ErrUnknown
	}
	return f.ConnectionID, nil
}
