// Package connections stores a customer's connection: the one record that ties a token family, its Jira sites,
// its API keys and its connectors together under pk CONN#<id>.
//
// Privacy: a connection holds site ids, URLs and names only. It never holds an Atlassian account id, e-mail or
// display name, and its id is random, never derived from anything Atlassian returns.
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
	Version        int64
}

// Errors callers branch on.
var (
	ErrNotFound = errors.New("connection not found")
	// ErrExists is returned by Create when the id is taken (a random id colliding means a bug, not bad luck).
	ErrExists = errors.New("connection already exists")
	// ErrDisconnected is returned by Reauthorize for a connection the user disconnected: it cannot come back.
	ErrDisconnected = errors.New("connection is disconnected")
)

// ItemType is the `type` attribute of a connection item.
const ItemType = "connection"

// PK is the partition key of everything that belongs to connection id.
func PK(id string) string { return "CONN#" + id }

// MetaSK is the sort key of the connection item itself.
const MetaSK = "META"

// NewID returns a random connection id: 128 bits, lower-case base32, never derived from Atlassian ids.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Store reads and writes connection items.
type Store struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

// Option tunes a Store.
type Option func(*Store)

// WithClock sets the source of CreatedAt/UpdatedAt (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store on table.
func NewStore(db *dynamodb.Client, table string, opts ...Option) *Store {
	s := &Store{db: db, table: table, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
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
}

func (it *item) connection() *Connection {
	return &Connection{
		ID: it.ID, Status: it.Status, StatusReason: it.StatusReason, Sites: it.Sites,
		CreatedAt: parseTime(it.CreatedAt), UpdatedAt: parseTime(it.UpdatedAt), GrantStartedAt: parseTime(it.GrantStartedAt),
		Version: it.V,
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: PK(id)},
		"sk": &types.AttributeValueMemberS{Value: MetaSK},
	}
}

// Get returns the connection, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Connection, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key(id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get connection: %w", err)
	}
	if out.Item == nil {
		return nil, ErrNotFound
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return nil, fmt.Errorf("decode connection: %w", err)
	}
	return it.connection(), nil
}

// CreateItem returns the conditional put that creates c, for a transaction with items that belong with it (the
// first API key). It fills in the defaults Create documents.
func (s *Store) CreateItem(c *Connection) (types.TransactWriteItem, error) {
	if c.ID == "" {
		c.ID = NewID()
	}
	now := s.now()
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
		StatusReason: c.StatusReason, Sites: c.Sites, CreatedAt: fmtTime(c.CreatedAt), UpdatedAt: fmtTime(c.UpdatedAt),
		GrantStartedAt: fmtTime(c.GrantStartedAt),
	})
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode connection: %w", err)
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(s.table), Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
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
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		var tc *types.TransactionCanceledException
		if errors.As(err, &tc) && len(tc.CancellationReasons) > 0 &&
			aws.ToString(tc.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
			return fmt.Errorf("create connection %s: %w", c.ID, ErrExists)
		}
		return fmt.Errorf("create connection: %w", err)
	}
	return nil
}

// MarkReauthRequired flags the connection: its grant is revoked or expired and only the user can fix it by
// re-authorising. reason is a short machine-readable cause (e.g. "invalid_grant"), shown to the user through the
// API. A disconnected connection stays disconnected.
func (s *Store) MarkReauthRequired(ctx context.Context, id, reason string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 key(id),
		UpdateExpression:    aws.String("SET #st = :rr, statusReason = :why, updatedAt = :now ADD v :one"),
		ConditionExpression: aws.String("attribute_exists(pk) AND #st <> :disc"),
		ExpressionAttributeNames: map[string]string{
			"#st": "status",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":rr":   &types.AttributeValueMemberS{Value: string(StatusReauthRequired)},
			":why":  &types.AttributeValueMemberS{Value: reason},
			":now":  &types.AttributeValueMemberS{Value: fmtTime(s.now())},
			":one":  &types.AttributeValueMemberN{Value: "1"},
			":disc": &types.AttributeValueMemberS{Value: string(StatusDisconnected)},
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			if cf.Item == nil {
				return fmt.Errorf("mark connection %s reauth required: %w", id, ErrNotFound)
			}
			return nil // disconnected: nothing to flag
		}
		return fmt.Errorf("mark connection reauth required: %w", err)
	}
	return nil
}

// Reauthorize records a new consent for an existing connection: its sites are replaced by the new grant's, its
// grant start moves to grantStartedAt and it becomes active again. Everything else under the connection
// (connectors, runs, API keys) is untouched. It returns ErrNotFound or ErrDisconnected when the connection
// cannot be re-authorised.
func (s *Store) Reauthorize(ctx context.Context, id string, sites []Site, grantStartedAt time.Time) (*Connection, error) {
	if sites == nil {
		sites = []Site{}
	}
	sitesAV, err := attributevalue.Marshal(sites)
	if err != nil {
		return nil, fmt.Errorf("encode sites: %w", err)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table),
		Key:       key(id),
		UpdateExpression: aws.String("SET #st = :active, sites = :sites, grantStartedAt = :gs, updatedAt = :now " +
			"REMOVE statusReason ADD v :one"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND #st <> :disc"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":active": &types.AttributeValueMemberS{Value: string(StatusActive)},
			":sites":  sitesAV,
			":gs":     &types.AttributeValueMemberS{Value: fmtTime(grantStartedAt)},
			":now":    &types.AttributeValueMemberS{Value: fmtTime(s.now())},
			":one":    &types.AttributeValueMemberN{Value: "1"},
			":disc":   &types.AttributeValueMemberS{Value: string(StatusDisconnected)},
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			if cf.Item == nil {
				return nil, fmt.Errorf("reauthorize connection %s: %w", id, ErrNotFound)
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
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key(id)})
	if err != nil {
		return fmt.Errorf("delete connection: %w", err)
	}
	return nil
}
