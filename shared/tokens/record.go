package tokens

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

// Item layout (pk CONN#<connId>, sk TOKEN):
//
//	type S "token", v N (+1 on every write: Put, lease, rotation, release, tombstone)
//	enc S envelope format; edk B KMS-encrypted data key; nonce B; ct B AES-256-GCM of {access, refresh}
//	scope S, tokenType S, expiry S (access token, RFC 3339), familyStartedAt S, refreshedAt S
//	leaseOwner S, leaseUntil N (Unix ms): present only while a refresh is in flight
//	reauthReason S, reauthAt S, ttl N: a tombstone left when the grant died; it holds no token material (it keeps
//	familyStartedAt, which says which grant died)
//	reauthNotified BOOL: on a tombstone, set once the re-authorisation callback succeeded; until then every
//	Token call tries it again
const (
	itemType = "token"
	skToken  = table.SKToken
	// tombstoneTTL keeps the "grant is dead" answer around long enough for callers to see it, then lets
	// DynamoDB remove it (the connection record carries the lasting status).
	tombstoneTTL = 30 * 24 * time.Hour
)

func key(connID string) table.Item { return table.Key(table.ConnPK(connID), skToken) }

type record struct {
	version                              int64
	env                                  envelope
	scope, tokenType                     string
	expiry, familyStartedAt, refreshedAt time.Time
	leaseOwner                           string
	leaseUntil                           time.Time
	reauthReason                         string
	reauthAt                             time.Time
	reauthNotified                       bool
}

// needsRefresh reports whether the access token is inside the refresh-ahead window (or past expiry). A token
// without expiry never needs one, as in x/oauth2.
func (r *record) needsRefresh(now time.Time, ahead time.Duration) bool {
	return !r.expiry.IsZero() && !now.Add(ahead).Before(r.expiry)
}

// leased reports whether a caller's lease is live; it reads leaseUntil alone, as the lease condition does.
func (r *record) leased(now time.Time) bool {
	return now.Before(r.leaseUntil)
}

func (r *record) reauthErr() error {
	return fmt.Errorf("%w (%s)", ErrReauthRequired, r.reauthReason)
}

func (s *Store) get(ctx context.Context, connID string) (*record, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key(connID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("tokens: read %s: %w", connID, err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, connID)
	}
	return decodeRecord(out.Item)
}

func decodeRecord(item map[string]ddbtypes.AttributeValue) (*record, error) {
	r := &record{}
	var err error
	getS := func(name string) string {
		if v, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	getB := func(name string) []byte {
		if v, ok := item[name].(*ddbtypes.AttributeValueMemberB); ok {
			return v.Value
		}
		return nil
	}
	getN := func(name string) int64 {
		v, ok := item[name].(*ddbtypes.AttributeValueMemberN)
		if !ok {
			return 0
		}
		n, perr := strconv.ParseInt(v.Value, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("tokens: attribute %s: %w", name, perr)
		}
		return n
	}
	getT := func(name string) time.Time {
		v := getS(name)
		if v == "" {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil && err == nil {
			err = fmt.Errorf("tokens: attribute %s: %w", name, perr)
		}
		return t
	}
	r.version = getN("v")
	r.env = envelope{edk: getB("edk"), nonce: getB("nonce"), ct: getB("ct")}
	if e := getS("enc"); e != "" && e != encVersion {
		return nil, fmt.Errorf("tokens: unknown envelope format %q", e)
	}
	r.scope, r.tokenType = getS("scope"), getS("tokenType")
	r.expiry, r.familyStartedAt, r.refreshedAt = getT("expiry"), getT("familyStartedAt"), getT("refreshedAt")
	r.leaseOwner = getS("leaseOwner")
	if ms := getN("leaseUntil"); ms != 0 {
		r.leaseUntil = time.UnixMilli(ms)
	}
	r.reauthReason, r.reauthAt = getS("reauthReason"), getT("reauthAt")
	if v, ok := item["reauthNotified"].(*ddbtypes.AttributeValueMemberBOOL); ok {
		r.reauthNotified = v.Value
	}
	return r, err
}

// update builds an UpdateItem expression; attribute names are always aliased, so reserved words are no concern.
type update struct {
	sets    []string
	removes []string
	names   map[string]string
	values  map[string]ddbtypes.AttributeValue
	cond    []string
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]ddbtypes.AttributeValue{}}
}

func (u *update) set(alias, attr string, v ddbtypes.AttributeValue) {
	if !strings.HasPrefix(alias, "#") {
		alias = "#" + alias
	}
	u.names[alias] = attr
	u.values[":"+alias[1:]] = v
	u.sets = append(u.sets, alias+" = :"+alias[1:])
}

func (u *update) setOrRemove(attr, v string) {
	if v == "" {
		u.remove(attr)
		return
	}
	u.set(attr, attr, table.S(v))
}

func (u *update) setTime(attr string, t time.Time) {
	if t.IsZero() {
		u.remove(attr)
		return
	}
	u.set(attr, attr, table.S(table.FormatTime(t)))
}

func (u *update) remove(attrs ...string) {
	for _, a := range attrs {
		u.names["#"+a] = a
		u.removes = append(u.removes, "#"+a)
	}
}

// bumpVersion adds 1 to v; fresh allows a missing v (a new item).
func (u *update) bumpVersion(fresh bool) {
	u.names["#v"] = "v"
	u.values[":one"] = table.N(1)
	if fresh {
		u.values[":zero"] = table.N(0)
		u.sets = append(u.sets, "#v = if_not_exists(#v, :zero) + :one")
		return
	}
	u.sets = append(u.sets, "#v = #v + :one")
}

// expectVersion makes the write conditional on the record being exactly the one read.
func (u *update) expectVersion(v int64) {
	u.names["#v"] = "v"
	u.values[":expected"] = table.N(v)
	u.cond = append(u.cond, "#v = :expected")
}

func (u *update) input(table, connID string) *dynamodb.UpdateItemInput {
	sort.Strings(u.removes)
	expr := "SET " + strings.Join(u.sets, ", ")
	if len(u.removes) > 0 {
		expr += " REMOVE " + strings.Join(u.removes, ", ")
	}
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: key(connID), UpdateExpression: aws.String(expr),
		ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
	}
	if len(u.cond) > 0 {
		in.ConditionExpression = aws.String(strings.Join(u.cond, " AND "))
	}
	return in
}

func isConditionFailed(err error) bool { _, ok := table.ConditionFailed(err); return ok }
