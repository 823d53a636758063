package export

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/attachments"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/mirror"
	"jiraexport/shared/table"
)

// The export keeps three kinds of items in the connection's partition:
//
//	IDX#<connectorId>#<issueId>   what the mirror holds of one issue: Jira's updated, the document's hash, the
//	                              run that last wrote or removed it, its attachment ids. A removed issue leaves a
//	                              tombstone (removed=true, TTL) so the run's manifest can list it.
//	SYNC#<connectorId>            the watermark (largest updated mirrored), the last full run, the last census, and
//	                              a fingerprint of the JQL and options the mirror was built with.
//	CKPT#<connectorId>#<runId>    the running export's checkpoint (TTL), written in the transaction that renews
//	                              its lease, so progress and checkpoint never disagree.

func idxSK(connectorID, issueID string) string { return table.IdxSK(connectorID, issueID) }
func syncSK(connectorID string) string         { return table.SyncSK(connectorID) }
func ckptSK(ref connectors.RunRef) string      { return table.CkptSK(ref.ConnectorID, ref.RunID) }
func pkOf(ref connectors.RunRef) string        { return table.ConnPK(ref.ConnectionID) }

// Retention of transient items.
const (
	checkpointTTL = 14 * 24 * time.Hour
	tombstoneTTL  = 30 * 24 * time.Hour
)

// indexEntry is an IDX item.
type indexEntry struct {
	PK      string `dynamodbav:"pk"`
	SK      string `dynamodbav:"sk"`
	ConnID  string `dynamodbav:"connId"`
	IssueID string `dynamodbav:"issueId"`
	Key     string `dynamodbav:"issueKey,omitempty"`
	Updated int64  `dynamodbav:"updated"`
	Hash    string `dynamodbav:"hash,omitempty"`
	// MDHash is the hash of issues/<issueId>.md when the connector writes Markdown ("" when none is stored).
	MDHash string `dynamodbav:"mdHash,omitempty"`
	// LastRun and Action are the run that last changed the mirror for this issue and what it did (written,
	// removed); SeenRun is the last full run whose search returned it (the full run's census).
	LastRun     string   `dynamodbav:"lastRun,omitempty"`
	Action      string   `dynamodbav:"action,omitempty"`
	SeenRun     string   `dynamodbav:"seenRun,omitempty"`
	Removed     bool     `dynamodbav:"removed,omitempty"`
	Attachments []string `dynamodbav:"attachments,omitempty,stringset"`
	// Stored are the attachments the mirror holds (id, size, SHA-256): never downloaded again (ids are
	// immutable); AttRun is what LastRun did with the issue's attachments (JSON, for its manifest).
	Stored []attachments.Stored `dynamodbav:"stored,omitempty"`
	AttRun string               `dynamodbav:"attRun,omitempty"`
	Counts string               `dynamodbav:"counts,omitempty"`
	TTL    int64                `dynamodbav:"ttl,omitempty"`
}

func (e *indexEntry) counts() *mirror.Counts {
	if e.Counts == "" {
		return nil
	}
	var c mirror.Counts
	if json.Unmarshal([]byte(e.Counts), &c) != nil {
		return nil
	}
	return &c
}

// syncState is the SYNC item.
type syncState struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	ConnID    string `dynamodbav:"connId"`
	Watermark int64  `dynamodbav:"watermark"`
	// Fingerprint of what the mirror was built from (JQL, site, included children): a change forces a full run.
	Fingerprint   string `dynamodbav:"fingerprint"`
	LastFullRun   string `dynamodbav:"lastFullRun"`
	LastFullRunAt int64  `dynamodbav:"lastFullRunAt"`
	LastCensusAt  int64  `dynamodbav:"lastCensusAt"`
	LastRun       string `dynamodbav:"lastRun"`
	LastRunAt     int64  `dynamodbav:"lastRunAt"`
}

// index reads and builds the export's items.
type index struct{ t *table.Table }

func newIndex(db table.Client, name string) *index { return &index{t: table.New(db, name)} }

func (x *index) getSync(ctx context.Context, connID, connectorID string) (*syncState, error) {
	var s syncState
	found, err := x.t.Get(ctx, connections.PK(connID), syncSK(connectorID), &s)
	if err != nil {
		return nil, fmt.Errorf("read sync state: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &s, nil
}

func (x *index) putSync(s *syncState) (types.TransactWriteItem, error) {
	item, err := attributevalue.MarshalMap(s)
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode sync state: %w", err)
	}
	return types.TransactWriteItem{Put: &types.Put{TableName: x.t.TableName(), Item: item}}, nil
}

// ckptItem is the CKPT item: the checkpoint as JSON.
type ckptItem struct {
	PK     string `dynamodbav:"pk"`
	SK     string `dynamodbav:"sk"`
	ConnID string `dynamodbav:"connId"`
	State  string `dynamodbav:"state"`
	TTL    int64  `dynamodbav:"ttl"`
}

func (x *index) getCheckpoint(ctx context.Context, ref connectors.RunRef) (*checkpoint, error) {
	var it ckptItem
	found, err := x.t.Get(ctx, connections.PK(ref.ConnectionID), ckptSK(ref), &it)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if !found {
		return nil, nil
	}
	var c checkpoint
	if err := json.Unmarshal([]byte(it.State), &c); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	return &c, nil
}

func (x *index) putCheckpoint(ref connectors.RunRef, c *checkpoint, now time.Time) (types.TransactWriteItem, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode checkpoint: %w", err)
	}
	item, err := attributevalue.MarshalMap(ckptItem{PK: connections.PK(ref.ConnectionID), SK: ckptSK(ref), ConnID: ref.ConnectionID,
		State: string(b), TTL: table.TTL(now.Add(checkpointTTL))})
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{TableName: x.t.TableName(), Item: item}}, nil
}

func (x *index) deleteCheckpoint(ref connectors.RunRef) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{TableName: x.t.TableName(), Key: table.Key(connections.PK(ref.ConnectionID), ckptSK(ref))}}
}

func (x *index) putEntry(e *indexEntry) (types.TransactWriteItem, error) {
	item, err := attributevalue.MarshalMap(e)
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode index entry: %w", err)
	}
	return types.TransactWriteItem{Put: &types.Put{TableName: x.t.TableName(), Item: item}}, nil
}

// getEntries reads the index entries of issueIDs (at most 100), by issue id.
func (x *index) getEntries(ctx context.Context, connID, connectorID string, issueIDs []string) (map[string]*indexEntry, error) {
	out := map[string]*indexEntry{}
	if len(issueIDs) == 0 {
		return out, nil
	}
	keys := make([]table.Item, 0, len(issueIDs))
	for _, id := range issueIDs {
		keys = append(keys, table.Key(connections.PK(connID), idxSK(connectorID, id)))
	}
	err := x.t.BatchGet(ctx, keys, "", func(items []table.Item) error {
		for _, item := range items {
			var e indexEntry
			if err := attributevalue.UnmarshalMap(item, &e); err != nil {
				return fmt.Errorf("decode index entry: %w", err)
			}
			out[e.IssueID] = &e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read index entries: %w", err)
	}
	return out, nil
}

// eachEntry calls fn for every index entry of the connector, page by page.
func (x *index) eachEntry(ctx context.Context, connID, connectorID string, fn func(*indexEntry) error) error {
	err := x.t.EachPage(ctx, x.t.PrefixQuery(connections.PK(connID), table.IdxPrefix(connectorID)), func(items []table.Item) error {
		for _, item := range items {
			var e indexEntry
			if err := attributevalue.UnmarshalMap(item, &e); err != nil {
				return fmt.Errorf("decode index entry: %w", err)
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list index entries: %w", err)
	}
	return nil
}

func idNum(id string) int64 {
	n, _ := strconv.ParseInt(id, 10, 64)
	return n
}
