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

	"jiraexport/shared/table"
)

const (
	pauseSK       = table.PrefixPause
	pauseGlobalSK = table.SKPauseGlobal
	pauseSiteSK   = table.PrefixPauseSite
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
type Pauses struct{ t *table.Table }

// NewPauses returns Pauses on the table name (table.WithClock sets its clock, for tests).
func NewPauses(db table.Client, name string, opts ...table.Option) *Pauses {
	return &Pauses{t: table.New(db, name, opts...)}
}

// Record stores the pause a 429 on site cloudID calls for, seen by a run of connection connID: the global quota
// pauses the whole app, a tenant quota that site only, both until l.ResumeAt. Other limits (burst, per-issue)
// pause nothing and answer ok false. A pause that already reaches as far or further is kept (a later reset
// wins), so racing writers converge on the latest reset.
func (p *Pauses) Record(ctx context.Context, connID, cloudID string, l Limit) (Pause, bool, error) {
	now := p.t.Now()
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
		sk, owner = table.PauseSiteSK(ps.CloudID), connID
		item["cloudId"] = table.S(ps.CloudID)
	} else if ps.Scope != ScopeGlobal {
		return fmt.Errorf("ratebudget: pause of scope %s", ps.Scope)
	}
	if owner == "" {
		owner = appConnID
	}
	for k, v := range table.Key(appPK, sk) {
		item[k] = v
	}
	item["type"] = table.S(itemPause)
	item["scope"] = table.S(ps.Scope.String())
	item["until"] = table.Millis(ps.Until)
	item["reason"] = table.S(ps.Reason)
	item["connId"] = table.S(owner)
	item["recordedAt"] = table.Millis(p.t.Now())
	item["ttl"] = table.TTLValue(ps.Until.Add(pauseKeep))
	_, err := p.t.DB().PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                p.t.TableName(),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(pk) OR #until < :until"),
		ExpressionAttributeNames: map[string]string{"#until": "until"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":until": table.Millis(ps.Until),
		},
	})
	if _, failed := table.ConditionFailed(err); failed {
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
	keys := []table.Item{table.Key(appPK, pauseGlobalSK)}
	if cloudID != "" {
		keys = append(keys, table.Key(appPK, table.PauseSiteSK(cloudID)))
	}
	var items []table.Item
	if err := p.t.BatchGet(ctx, keys, "", func(got []table.Item) error { items = append(items, got...); return nil }); err != nil {
		return Pause{}, false, fmt.Errorf("ratebudget: read pauses: %w", err)
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
	var items []table.Item
	err := p.t.EachPage(ctx, p.t.PrefixQuery(appPK, pauseSK), func(page []table.Item) error {
		items = append(items, page...)
		return nil
	})
	if err != nil {
		return PauseSet{}, fmt.Errorf("ratebudget: read pauses: %w", err)
	}
	return p.setOf(items), nil
}

func (p *Pauses) setOf(items []table.Item) PauseSet {
	now := p.t.Now()
	set := PauseSet{At: now, Sites: map[string]Pause{}}
	for _, it := range items {
		sk := table.StringOf(it["sk"])
		if sk == "" {
			continue
		}
		ps := Pause{Until: time.UnixMilli(table.IntOf(it["until"])).UTC(), Reason: table.StringOf(it["reason"])}
		if !ps.Until.After(now) {
			continue // over; TTL deletes the item later
		}
		switch {
		case sk == pauseGlobalSK:
			ps.Scope = ScopeGlobal
			g := ps
			set.Global = &g
		case strings.HasPrefix(sk, pauseSiteSK):
			ps.Scope, ps.CloudID = ScopeSite, sk[len(pauseSiteSK):]
			set.Sites[ps.CloudID] = ps
		}
	}
	return set
}
