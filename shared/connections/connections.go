// Package connections stores a customer's connection: the one record that ties a token family, its Jira sites,
// its API keys and its connectors together under pk CONN#<id>.
//
// Privacy: a connection holds site ids, URLs and names only. It never holds an Atlassian account id, e-mail or
// display name, and its id is random, never derived from anything Atlassian returns. To refuse a
// re-authorisation by another Atlassian account it keeps a keyed fingerprint of the account that consented first
// (shared/fingerprint: an HMAC inside KMS, not reversible, not linkable across connections or deployments), in
// the connection item itself, so erasing the connection erases it.
package connections

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

// Status is a connection's lifecycle state.
type Status string

// The statuses.
const (
	StatusActive         Status = "active"
	StatusReauthRequired Status = "reauth_required"
	StatusDisconnected   Status = "disconnected"
)

// Site is one Jira Cloud site the grant covers.
type Site struct {
	CloudID string   `dynamodbav:"cloudId"`
	URL     string   `dynamodbav:"url"`
	Name    string   `dynamodbav:"name"`
	Scopes  []string `dynamodbav:"scopes"`
}

// Connection is one customer's link to Atlassian.
type Connection struct {
	ID           string
	Status       Status
	StatusReason string
	Sites        []Site
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// GrantStartedAt is when the current token family began (its absolute expiry counts from here).
	GrantStartedAt time.Time
	// AccountFingerprint identifies the Atlassian account that made the connection (shared/fingerprint); set at
	// creation and never changed, it is what every re-authorisation must match.
	AccountFingerprint string
	Version            int64
}

// Errors callers branch on.
var (
	ErrNotFound = errors.New("connection not found")
	// ErrExists is returned by Create when the id is taken (a random id colliding means a bug, not bad luck).
	ErrExists = errors.New("connection already exists")
	// ErrDisconnected is returned by Reauthorize for a connection the user disconnected: it cannot come back.
	ErrDisconnected = errors.New("connection is disconnected")
	// ErrAccountMismatch is returned by Reauthorize when the new grant belongs to another Atlassian account than
	// the one that made the connection (or the connection has no fingerprint to compare with).
	ErrAccountMismatch = errors.New("re-authorisation by another Atlassian account")
)

// ItemType is the `type` attribute of a connection item.
const ItemType = "connection"

// PK is the partition key of everything that belongs to connection id.
func PK(id string) string { return table.ConnPK(id) }

// MetaSK is the sort key of the connection item itself.
const MetaSK = table.SKMeta

// NewID returns a random connection id: 128 bits, lower-case base32, never derived from Atlassian ids.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Store reads and writes connection items.
type Store struct{ t *table.Table }

// NewStore returns a Store on the table name (table.WithClock sets the clock that stamps items, for tests).
func NewStore(db table.Client, name string, opts ...table.Option) *Store {
	return &Store{t: table.New(db, name, opts...)}
}

// item is the stored shape. Times are RFC 3339 strings so they sort and read well in the console.
type item struct {
	PK             string `dynamodbav:"pk"`
	SK             string `dynamodbav:"sk"`
	Type           string `dynamodbav:"type"`
	V              int64  `dynamodbav:"v"`
	ID             string `dynamodbav:"id"`
	Status         Status `dynamodbav:"status"`
	StatusReason   string `dynamodbav:"statusReason,omitempty"`
	Sites          []Site `dynamodbav:"sites"`
	CreatedAt      string `dynamodbav:"createdAt"`
	UpdatedAt      string `dynamodbav:"updatedAt"`
	GrantStartedAt string `dynamodbav:"grantStartedAt"`
	AccountFp      string `dynamodbav:"accountFp,omitempty"`
}

func (it *item) connection() *Connection {
	return &Connection{
		ID: it.ID, Status: it.Status, StatusReason: it.StatusReason, Sites: it.Sites,
		CreatedAt: table.ParseTime(it.CreatedAt), UpdatedAt: table.ParseTime(it.UpdatedAt), GrantStartedAt: table.ParseTime(it.GrantStartedAt),
		AccountFingerprint: it.AccountFp, Version: it.V,
	}
}

func key(id string) table.Item { return table.Key(PK(id), MetaSK) }

// Get returns the connection, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Connection, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	var it item
	found, err := s.t.Get(ctx, PK(id), MetaSK, &it)
	if err != nil {
		return nil, fmt.Errorf("get connection: %w", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	return it.connection(), nil
}

// CreateItem returns the conditional put that creates c, for a transaction with items that belong with it (the
// first API key). It fills in the defaults Create documents.
func (s *Store) CreateItem(c *Connection) (types.TransactWriteItem, error) {
	if c.ID == "" {
		c.ID = NewID()
	}
	now := s.t.Now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	if c.GrantStartedAt.IsZero() {
		c.GrantStartedAt = c.CreatedAt
	}
	if c.Status == "" {
		c.Status = StatusActive
	}
	if c.Sites == nil {
		c.Sites = []Site{}
	}
	c.Version = 1
	av, err := attributevalue.MarshalMap(item{
		PK: PK(c.ID), SK: MetaSK, Type: ItemType, V: c.Version, ID: c.ID, Status: c.Status,
		StatusReason: c.StatusReason, Sites: c.Sites, CreatedAt: table.FormatTime(c.CreatedAt), UpdatedAt: table.FormatTime(c.UpdatedAt),
		GrantStartedAt: table.FormatTime(c.GrantStartedAt), AccountFp: c.AccountFingerprint,
	})
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode connection: %w", err)
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName: s.t.TableName(), Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}, nil
}

// Create stores a new connection together with also (other items that must be written with it or not at all,
// such as the first API key) in one transaction. An empty ID gets a random one; zero times become now; an empty
// status becomes active. It returns ErrExists when the id is taken.
func (s *Store) Create(ctx context.Context, c *Connection, also ...types.TransactWriteItem) error {
	put, err := s.CreateItem(c)
	if err != nil {
		return err
	}
	items := append([]types.TransactWriteItem{put}, also...)
	_, err = s.t.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		if table.Cancelled(err).FailedAt(0) {
			return fmt.Errorf("create connection %s: %w", c.ID, ErrExists)
		}
		return fmt.Errorf("create connection: %w", err)
	}
	return nil
}

// MarkReauthRequired flags the connection: its grant is revoked or expired and only the user can fix it by
// re-authorising. reason is a short machine-readable cause (e.g. "invalid_grant"), shown to the user through the
// API. A disconnected connection stays disconnected.
//
// It flags whatever the current grant is; a report about a particular grant goes through
// MarkGrantReauthRequired, so that it cannot undo a newer consent.
func (s *Store) MarkReauthRequired(ctx context.Context, id, reason string) error {
	_, err := s.mark(ctx, id, reason, nil)
	return err
}

// MarkGrantReauthRequired is MarkReauthRequired for the grant that began at grantStartedAt (the token family's
// start). When the connection's grant began later, the user has consented again since that grant died, and the
// connection is left as it is. A zero grantStartedAt flags the current grant.
func (s *Store) MarkGrantReauthRequired(ctx context.Context, id, reason string, grantStartedAt time.Time) error {
	_, err := s.markGrant(ctx, id, reason, grantStartedAt)
	return err
}

// markGrant reports whether it flagged the connection.
func (s *Store) markGrant(ctx context.Context, id, reason string, grantStartedAt time.Time) (bool, error) {
	if grantStartedAt.IsZero() {
		return s.mark(ctx, id, reason, nil)
	}
	// Times are stored as strings that do not sort as times, so the comparison is made here, on a read, and the
	// write holds only if the grant is still the one read.
	for range 3 {
		c, err := s.Get(ctx, id)
		if err != nil {
			return false, fmt.Errorf("mark connection reauth required: %w", err)
		}
		if c.Status == StatusDisconnected || c.GrantStartedAt.After(grantStartedAt) {
			return false, nil
		}
		flagged, err := s.mark(ctx, id, reason, &c.GrantStartedAt)
		if !errors.Is(err, errGrantChanged) {
			return flagged, err
		}
	}
	return false, fmt.Errorf("mark connection %s reauth required: its grant keeps changing", id)
}

// errGrantChanged means the connection was re-authorised between markGrant's read and its write.
var errGrantChanged = errors.New("connection grant changed")

// mark sets reauth_required, only while the grant start is still ifGrant when that is set.
func (s *Store) mark(ctx context.Context, id, reason string, ifGrant *time.Time) (bool, error) {
	cond := "attribute_exists(pk) AND #st <> :disc"
	vals := table.Item{
		":rr":   table.S(string(StatusReauthRequired)),
		":why":  table.S(reason),
		":now":  table.S(table.FormatTime(s.t.Now())),
		":one":  table.N(1),
		":disc": table.S(string(StatusDisconnected)),
		// Listed as revoked since now (first flag only), so a grant left revoked is found cheaply and erased.
		":revoked": table.S(RevokedGSIPK),
		":rkey":    table.S(IndexKey(s.t.Now(), id)),
	}
	if ifGrant != nil {
		cond += " AND grantStartedAt = :gs"
		vals[":gs"] = table.S(table.FormatTime(*ifGrant))
	}
	_, err := s.t.DB().UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.t.TableName(),
		Key:                                 key(id),
		UpdateExpression:                    aws.String("SET #st = :rr, statusReason = :why, updatedAt = :now, gsi1pk = :revoked, gsi1sk = if_not_exists(gsi1sk, :rkey) ADD v :one"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            map[string]string{"#st": "status"},
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if oldItem, failed := table.ConditionFailed(err); failed {
			if oldItem == nil {
				return false, fmt.Errorf("mark connection %s reauth required: %w", id, ErrNotFound)
			}
			var old item
			if uerr := attributevalue.UnmarshalMap(oldItem, &old); uerr == nil && old.Status != StatusDisconnected && ifGrant != nil {
				return false, errGrantChanged
			}
			return false, nil // disconnected: nothing to flag
		}
		return false, fmt.Errorf("mark connection reauth required: %w", err)
	}
	return true, nil
}

// WorkStopper stops the work of a connection (connectors.Store.CancelActiveRuns: it cancels the connection's
// queued and running runs with reason). Connectors stay as the user configured them, so re-authorising resumes
// their schedules without the user having to re-enable anything.
type WorkStopper interface {
	CancelActiveRuns(ctx context.Context, connID, reason string) error
}

// OnGrantRejected is the tokens store's re-authorisation callback (tokens.WithGrantReauthCallback): it flags the
// connection with MarkGrantReauthRequired and, when it did, stops its work through work (nil: flag only), with
// reason "reauth_required". A report about a grant the user has already replaced changes nothing.
//
// The connectors API refuses Jira work while a connection is reauth_required; whatever later starts runs on its
// own (the scheduler, the export worker) must likewise skip runs whose connection is not active.
func (s *Store) OnGrantRejected(work WorkStopper) func(ctx context.Context, connID, reason string, grantStartedAt time.Time) error {
	return func(ctx context.Context, connID, reason string, grantStartedAt time.Time) error {
		flagged, err := s.markGrant(ctx, connID, reason, grantStartedAt)
		if err != nil || !flagged || work == nil {
			return err
		}
		if err := work.CancelActiveRuns(ctx, connID, string(StatusReauthRequired)); err != nil {
			return fmt.Errorf("stop the work of connection %s: %w", connID, err)
		}
		return nil
	}
}

// Reauthorize records a new consent for an existing connection: its sites are replaced by the new grant's, its
// grant start moves to grantStartedAt and it becomes active again. Everything else under the connection
// (connectors, runs, API keys) is untouched. accountFp is the new grant's account fingerprint: the write holds
// only if it is the connection's own, so another account's grant can never be attached to it. It returns
// ErrNotFound, ErrDisconnected or ErrAccountMismatch when the connection cannot be re-authorised.
func (s *Store) Reauthorize(ctx context.Context, id string, sites []Site, grantStartedAt time.Time, accountFp string) (*Connection, error) {
	if accountFp == "" {
		return nil, fmt.Errorf("reauthorize connection %s: %w", id, ErrAccountMismatch)
	}
	if sites == nil {
		sites = []Site{}
	}
	sitesAV, err := attributevalue.Marshal(sites)
	if err != nil {
		return nil, fmt.Errorf("encode sites: %w", err)
	}
	out, err := s.t.DB().UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: s.t.TableName(),
		Key:       key(id),
		UpdateExpression: aws.String("SET #st = :active, sites = :sites, grantStartedAt = :gs, updatedAt = :now " +
			"REMOVE statusReason, gsi1pk, gsi1sk ADD v :one"),
		// Equality in DynamoDB is exact, not constant-time; the fingerprint is a MAC that reveals nothing, and
		// the handler compares it in constant time before it gets here.
		ConditionExpression:      aws.String("attribute_exists(pk) AND #st <> :disc AND accountFp = :fp"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: table.Item{
			":active": table.S(string(StatusActive)),
			":sites":  sitesAV,
			":gs":     table.S(table.FormatTime(grantStartedAt)),
			":now":    table.S(table.FormatTime(s.t.Now())),
			":one":    table.N(1),
			":disc":   table.S(string(StatusDisconnected)),
			":fp":     table.S(accountFp),
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if oldItem, failed := table.ConditionFailed(err); failed {
			var old item
			switch {
			case oldItem == nil:
				return nil, fmt.Errorf("reauthorize connection %s: %w", id, ErrNotFound)
			case attributevalue.UnmarshalMap(oldItem, &old) == nil && old.Status != StatusDisconnected:
				return nil, fmt.Errorf("reauthorize connection %s: %w", id, ErrAccountMismatch)
			}
			return nil, fmt.Errorf("reauthorize connection %s: %w", id, ErrDisconnected)
		}
		return nil, fmt.Errorf("reauthorize connection: %w", err)
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return nil, fmt.Errorf("decode connection: %w", err)
	}
	return it.connection(), nil
}

// Delete removes the connection item. It is idempotent. The other items under the connection (token envelope,
// API keys, connectors, runs) belong to their own packages, which delete them on disconnect and purge.
func (s *Store) Delete(ctx context.Context, id string) error {
	_, err := s.t.DB().DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.t.TableName(), Key: key(id)})
	if err != nil {
		return fmt.Errorf("delete connection: %w", err)
	}
	return nil
}
