package ratebudget

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const (
	pauseSK       = "PAUSE#"
	pauseGlobalSK = "PAUSE#global"
	pauseSiteSK   = "PAUSE#site#"
	itemPause     = "quota_pause"
	pauseKeep     = time.Hour // items outlive their pause a little; readers compare until, TTL deletion is lazy
)

// Pause is a quota pause: nothing in its scope may call Jira before Until.
type Pause struct {
	Scope   Scope // ScopeGlobal or ScopeSite
	CloudID string
	Until   time.Time
	Reason  string
}

// Pauses stores quota pauses shared by every export, the dispatcher and the connectors API.
type Pauses struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

// NewPauses returns Pauses on table.
func NewPauses(db *dynamodb.Client, table string, opts ...Option) *Pauses {
	o := newOptions(opts)
	return &Pauses{db: db, table: table, now: o.now}
}

// Record stores the pause a 429 on site cloudID calls for, seen by a run of connection connID: the global quota
// pauses the whole app, a tenant quota that site only, both until l.ResumeAt. Other limits (burst, per-issue)
// pause nothing and answer ok false. A pause that already reaches as far or further is kept (a later reset
// wins), so racing writers converge on the latest reset.
func (p *Pauses) Record(ctx context.Context, connID, cloudID string, l Limit) (Pause, bool, error) {
	now := p.now()
	var ps Pause
	switch l.Scope() {
	case ScopeGlobal:
		ps = Pause{Scope: ScopeGlobal}
	case ScopeSite:
		if cloudID == "" {
			return Pause{}, false, errors.New("ratebudget: tenant quota pause without a site")
		}
		ps = Pause{Scope: ScopeSite, CloudID: cloudID}
	default:
		return Pause{}, false, nil
	}
	ps.Until, ps.Reason = l.ResumeAt(now), l.Reason
	return ps, true, p.Put(ctx, connID, ps)
}

// Put stores ps unless a pause of the same scope already lasts at least as long.
func (p *Pauses) Put(ctx context.Context, connID string, ps Pause) error {
	sk, owner := pauseGlobalSK, appConnID
	item := map[string]types.AttributeValue{}
	if ps.Scope == ScopeSite {
		if ps.CloudID == "" {
			return errors.New("ratebudget: site pause without a site")
		}
		sk, owner = pauseSiteSK+ps.CloudID, connID
		item["cloudId"] = &types.AttributeValueMemberS{Value: ps.CloudID}
	} else if ps.Scope != ScopeGlobal {
		return fmt.Errorf("ratebudget: pause of scope %s", ps.Scope)
	}
	if owner == "" {
		owner = appConnID
	}
	for k, v := range key(appPK, sk) {
		item[k] = v
	}
	item["type"] = &types.AttributeValueMemberS{Value: itemPause}
	item["scope"] = &types.AttributeValueMemberS{Value: ps.Scope.String()}
	item["until"] = num(ps.Until.UnixMilli())
	item["reason"] = &types.AttributeValueMemberS{Value: ps.Reason}
	item["connId"] = &types.AttributeValueMemberS{Value: owner}
	item["recordedAt"] = num(p.now().UnixMilli())
	item["ttl"] = num(ps.Until.Add(pauseKeep).Unix())
	_, err := p.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(p.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(pk) OR #until < :until"),
		ExpressionAttributeNames: map[string]string{"#until": "until"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":until": num(ps.Until.UnixMilli()),
		},
	})
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return nil // an equal or later pause is already there
	}
	if err != nil {
		return fmt.Errorf("ratebudget: record %s pause: %w", ps.Scope, err)
	}
	return nil
}

// IsPaused reports whether site cloudID may not call Jira now, and until when (the later of the app-wide and
// the site's pause). Exports call it before each batch of calls; the dispatcher uses Active for many sites.
func (p *Pauses) IsPaused(ctx context.Context, cloudID string) (Pause, bool, error) {
	keys := []map[string]types.AttributeValue{key(appPK, pauseGlobalSK)}
	if cloudID != "" {
		keys = append(keys, key(appPK, pauseSiteSK+cloudID))
	}
	out, err := p.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		p.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
	}})
	if err != nil {
		return Pause{}, false, fmt.Errorf("ratebudget: read pauses: %w", err)
	}
	items := out.Responses[p.table]
	if len(out.UnprocessedKeys) > 0 {
		// Two small keys are practically never left over; if they are, read them one by one.
		items = items[:0]
		for _, k := range keys {
			g, err := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(p.table), Key: k, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return Pause{}, false, fmt.Errorf("ratebudget: read pauses: %w", err)
			}
			if g.Item != nil {
				items = append(items, g.Item)
			}
		}
	}
	set := p.setOf(items)
	ps, ok := set.Paused(cloudID)
	return ps, ok, nil
}

// PauseSet is every pause in force at one moment.
type PauseSet struct {
	At     time.Time
	Global *Pause
	Sites  map[string]Pause
}

// Paused reports whether site cloudID is paused at s.At, with the pause that ends last.
func (s PauseSet) Paused(cloudID string) (Pause, bool) {
	var best Pause
	found := false
	if s.Global != nil && s.Global.Until.After(s.At) {
		best, found = *s.Global, true
	}
	if ps, ok := s.Sites[cloudID]; ok && cloudID != "" && ps.Until.After(s.At) && (!found || ps.Until.After(best.Until)) {
		best, found = ps, true
	}
	return best, found
}

// Active reads every pause in force now (one query of the APP partition's PAUSE# items), for the dispatcher.
func (p *Pauses) Active(ctx context.Context) (PauseSet, error) {
	var items []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for {
		out, err := p.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(p.table),
			KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :sk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: appPK}, ":sk": &types.AttributeValueMemberS{Value: pauseSK}},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return PauseSet{}, fmt.Errorf("ratebudget: read pauses: %w", err)
		}
		items = append(items, out.Items...)
		if start = out.LastEvaluatedKey; len(start) == 0 {
			break
		}
	}
	return p.setOf(items), nil
}

func (p *Pauses) setOf(items []map[string]types.AttributeValue) PauseSet {
	now := p.now()
	set := PauseSet{At: now, Sites: map[string]Pause{}}
	for _, it := range items {
		sk, _ := it["sk"].(*types.AttributeValueMemberS)
		if sk == nil {
			continue
		}
		ps := Pause{Until: time.UnixMilli(numOf(it["until"])).UTC()}
		if r, ok := it["reason"].(*types.AttributeValueMemberS); ok {
			ps.Reason = r.Value
		}
		if !ps.Until.After(now) {
			continue // over; TTL deletes the item later
		}
		switch {
		case sk.Value == pauseGlobalSK:
			ps.Scope = ScopeGlobal
			g := ps
			set.Global = &g
		case strings.HasPrefix(sk.Value, pauseSiteSK):
			ps.Scope, ps.CloudID = ScopeSite, sk.Value[len(pauseSiteSK):]
			set.Sites[ps.CloudID] = ps
		}
	}
	return set
}
