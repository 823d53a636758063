// Package erasure deletes everything the product holds about a connection (or every connection of a Jira site):
// its table items, the items outside its partition that belong to it, and every S3 object version, delete marker
// and incomplete multipart upload under its prefix. The connectors API (DELETE /v1/connection), the purge function
// and the automatic erasure of grants left revoked all use Eraser.Erase.
//
// Order, and why:
//  1. Fence. The connection is marked disconnected (reason erasing): every transaction that creates a connector,
//     run, key or checkpoint checks the connection and fails from now on. Its active runs are cancelled with
//     reason "erased", which revokes their leases (export writes are conditional on the run's status and the
//     connection's). When a run was active, an export may still be between two checkpoints and write S3 objects
//     until its invocation ends; the erasure cannot finish before FinishAfter (fence + Settle, the export's
//     longest invocation).
//  2. Table items of the partition except the connection item and the API keys (tokens go in the first batch).
//  3. OAuth states and re-authorisation tickets bound to the connection (listed in the "due" index).
//  4. S3: every version and delete marker under "<connectionId>/", then every incomplete multipart upload.
//  5. Re-check after FinishAfter: 2–4 again from the start; what they find was written behind the fence, is
//     deleted and reported as foundBehindFence.
//  6. API keys (hash items first, then their listings), last but one, so a user whose erasure could not finish in
//     one request can call DELETE /v1/connection again with the same key.
//  7. The connection item: from then on nothing of the connection exists.
//
// Every step is idempotent, so a crashed or interrupted erasure is finished by running it again. Erase stops
// StopMargin before its context's deadline (or after MaxPages pages) and returns a continuation to pass back.
package erasure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/table"
)

// Fencer is what erasure needs of shared/connections.
type Fencer interface {
	MarkErasing(ctx context.Context, id string, o connections.FenceOptions) (time.Time, error)
	SetFinishAfter(ctx context.Context, id string, t time.Time) (time.Time, error)
}

// RunCanceller is what erasure needs of shared/connectors: cancel every active run of the connection.
type RunCanceller interface {
	CancelActiveRuns(ctx context.Context, connID, reason string) error
}

// CancelReason is the reason of runs cancelled by an erasure.
const CancelReason = "erased"

// IndexName is the table's sparse index (template.yaml).
const IndexName = table.IndexDue

// Defaults of Config.
const (
	// DefaultSettle is the export function's longest invocation (Lambda's 900 s limit): an export running at the
	// fence cannot write after it.
	DefaultSettle     = 15 * time.Minute
	DefaultStopMargin = 10 * time.Second
	DefaultPageSize   = 1000
)

// Config wires an Eraser. DB, S3, Table, Bucket, Connections and Runs are required.
type Config struct {
	DB          *dynamodb.Client
	S3          *s3.Client
	Table       string
	Bucket      string
	Connections Fencer
	Runs        RunCanceller
	Now         func() time.Time
	// Settle is how long after the fence a run that was active may still write (zero: DefaultSettle; negative:
	// no wait, for tests that have no export).
	Settle time.Duration
	// StopMargin: Erase returns a continuation when its context's deadline is closer than this.
	StopMargin time.Duration
	// PageSize is the S3 list size and DynamoDB query limit (max 1000, DefaultPageSize).
	PageSize int32
	// MaxPages, when positive, makes Erase stop after that many list pages (tests of resumption).
	MaxPages int
}

// Eraser erases connections.
type Eraser struct {
	c Config
	t *table.Table
}

// New returns an Eraser.
func New(c Config) *Eraser {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	c.Settle = max(c.Settle, 0)
	if c.StopMargin == 0 {
		c.StopMargin = DefaultStopMargin
	}
	if c.PageSize <= 0 || c.PageSize > 1000 {
		c.PageSize = DefaultPageSize
	}
	return &Eraser{c: c, t: table.New(c.DB, c.Table, table.WithClock(c.Now))}
}

// Request says what to erase: one connection, or every connection holding a site.
type Request struct {
	ConnectionID string `json:"connectionId,omitempty"`
	SiteID       string `json:"siteId,omitempty"`
	// DryRun lists and counts what would be deleted, and changes nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// Continuation resumes an erasure that stopped before its deadline (Report.Continuation).
	Continuation string `json:"continuation,omitempty"`
	// RevokedBefore, when set, erases the connection only if its grant has been revoked since before this time
	// (the automatic erasure of grants left revoked; ErrNotRevoked otherwise).
	RevokedBefore time.Time `json:"-"`
}

// Report says what an erasure deleted (or, for a dry run, would delete), by kind, with counts. Counts add up
// across continuations.
type Report struct {
	ConnectionIDs []string `json:"connectionIds"`
	SiteID        string   `json:"siteId,omitempty"`
	DryRun        bool     `json:"dryRun"`
	// Complete is false when the erasure stopped early: pass Continuation back (or run the same request again).
	Complete     bool       `json:"complete"`
	Continuation string     `json:"continuation,omitempty"`
	FinishAfter  *time.Time `json:"finishAfter,omitempty"`
	// Deleted counts by kind: connection, token, apiKey, apiKeyHash, apiKeyCount, connector, connectorCount, run,
	// checkpoint, issueIndex, syncState, pseudonymKey, pointsCounter, oauthState, reauthTicket, other,
	// objectVersion, deleteMarker, multipartUpload, sitePause.
	Deleted map[string]int64 `json:"deleted"`
	// FoundBehindFence counts what the re-check found (written after the fence); it is included in Deleted.
	FoundBehindFence map[string]int64 `json:"foundBehindFence"`
	RunsCancelled    int64            `json:"runsCancelled"`
}

// Errors callers branch on.
var (
	ErrBadRequest      = errors.New("erasure needs exactly one of connectionId and siteId")
	ErrBadContinuation = errors.New("continuation does not belong to this request")
	// ErrNotRevoked: a request with RevokedBefore found a connection re-authorised (or not revoked long enough).
	ErrNotRevoked = connections.ErrNotRevoked
)

// Phases of one connection's erasure.
const (
	phFence = iota
	phItems
	phStates
	phVersions
	phUploads
	phWait
	phReItems
	phReStates
	phReVersions
	phReUploads
	phKeys
	phMeta
	phDone
)

// cursor is the continuation's content. It carries positions and counts only: the fence and its FinishAfter are
// stored on the connection item, so a request without a continuation resumes correctly too.
type cursor struct {
	V            int               `json:"v"`
	Conn         string            `json:"c,omitempty"`
	Site         string            `json:"s,omitempty"`
	Dry          bool              `json:"d,omitempty"`
	Scan         map[string]string `json:"sc,omitempty"`
	ScanDone     bool              `json:"sd,omitempty"`
	Queue        []string          `json:"q,omitempty"`
	Done         []string          `json:"dn,omitempty"`
	Cur          string            `json:"cur,omitempty"`
	Phase        int               `json:"p"`
	Start        map[string]string `json:"k,omitempty"`
	KeyMarker    string            `json:"km,omitempty"`
	VerMarker    string            `json:"vm,omitempty"`
	UploadMarker string            `json:"um,omitempty"`
	FinishAfter  time.Time         `json:"fa,omitzero"`
	Deleted      map[string]int64  `json:"del,omitempty"`
	Behind       map[string]int64  `json:"bh,omitempty"`
	Cancelled    int64             `json:"rc,omitempty"`
}

func (c *cursor) encode() string {
	b, _ := json.Marshal(c) // a cursor always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, r Request) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrBadContinuation
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.V != 1 || c.Conn != r.ConnectionID || c.Site != r.SiteID || c.Dry != r.DryRun {
		return nil, ErrBadContinuation
	}
	return &c, nil
}

// errStop means the budget (deadline or MaxPages) is spent: the cursor holds where to go on.
var errStop = errors.New("erasure budget spent")

// errWait means the re-check must wait for FinishAfter.
var errWait = errors.New("erasure waits for writers that were active at the fence")

type run struct {
	e      *Eraser
	req    Request
	cur    *cursor
	pages  int
	behind bool
}

// Erase erases what r names, or continues an erasure r.Continuation names. It returns the report so far and a
// nil error when it stopped early (Report.Complete false, Report.Continuation set).
func (e *Eraser) Erase(ctx context.Context, r Request) (*Report, error) {
	if (r.ConnectionID == "") == (r.SiteID == "") {
		return nil, ErrBadRequest
	}
	c := &cursor{V: 1, Conn: r.ConnectionID, Site: r.SiteID, Dry: r.DryRun, Cur: r.ConnectionID}
	if r.Continuation != "" {
		var err error
		if c, err = decodeCursor(r.Continuation, r); err != nil {
			return nil, err
		}
	}
	if c.Deleted == nil {
		c.Deleted = map[string]int64{}
	}
	if c.Behind == nil {
		c.Behind = map[string]int64{}
	}
	ru := &run{e: e, req: r, cur: c}
	err := ru.all(ctx)
	rep := &Report{SiteID: r.SiteID, DryRun: r.DryRun, Deleted: c.Deleted, FoundBehindFence: c.Behind, RunsCancelled: c.Cancelled}
	rep.ConnectionIDs = slices.Clone(c.Done)
	if r.SiteID == "" {
		rep.ConnectionIDs = []string{r.ConnectionID}
	} else if c.Cur != "" && !slices.Contains(rep.ConnectionIDs, c.Cur) {
		rep.ConnectionIDs = append(rep.ConnectionIDs, c.Cur)
	}
	if rep.ConnectionIDs == nil {
		rep.ConnectionIDs = []string{}
	}
	if !c.FinishAfter.IsZero() {
		t := c.FinishAfter.UTC()
		rep.FinishAfter = &t
	}
	switch {
	case err == nil:
		rep.Complete = true
	case errors.Is(err, errStop), errors.Is(err, errWait):
		rep.Continuation = c.encode()
		return rep, nil
	default:
		return rep, err
	}
	return rep, nil
}

// budget reports errStop when the next page would run past the deadline or MaxPages.
func (r *run) budget(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.e.c.MaxPages > 0 && r.pages >= r.e.c.MaxPages {
		return errStop
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < r.e.c.StopMargin {
		return errStop
	}
	r.pages++
	return nil
}

func (r *run) all(ctx context.Context) error {
	c := r.cur
	if c.Site == "" {
		return r.connection(ctx)
	}
	for !c.ScanDone {
		if err := r.scanSite(ctx); err != nil {
			return err
		}
	}
	for {
		if c.Cur == "" {
			if len(c.Queue) == 0 {
				break
			}
			c.Cur, c.Queue = c.Queue[0], c.Queue[1:]
			c.Phase, c.FinishAfter = phFence, time.Time{}
		}
		if err := r.connection(ctx); err != nil {
			return err
		}
		c.Done = append(c.Done, c.Cur)
		c.Cur = ""
	}
	return r.deleteSitePause(ctx)
}

// connection runs the phases of c.Cur from c.Phase.
func (r *run) connection(ctx context.Context) error {
	c := r.cur
	for c.Phase < phDone {
		var err error
		r.behind = c.Phase >= phReItems && c.Phase <= phReUploads
		switch c.Phase {
		case phFence:
			err = r.fence(ctx)
		case phItems, phReItems:
			err = r.items(ctx, false)
		case phStates, phReStates:
			err = r.states(ctx)
		case phVersions, phReVersions:
			err = r.versions(ctx)
		case phUploads, phReUploads:
			err = r.uploads(ctx)
		case phWait:
			if c.Dry {
				c.Phase = phKeys // a dry run has no fence to wait for and nothing to re-check
				continue
			}
			if r.e.c.Now().Before(c.FinishAfter) {
				return errWait
			}
			c.Phase++
			continue
		case phKeys:
			err = r.items(ctx, true)
		case phMeta:
			err = r.meta(ctx)
		}
		if err != nil {
			return err
		}
		// Each phase returns nil only when it is complete; positions reset for the next one.
		c.Phase++
		c.Start, c.KeyMarker, c.VerMarker, c.UploadMarker = nil, "", "", ""
	}
	return nil
}

func (r *run) fence(ctx context.Context) error {
	c, e := r.cur, r.e
	if c.Dry {
		n, err := r.activeRuns(ctx)
		c.Cancelled += n
		return err
	}
	fa, err := e.c.Connections.MarkErasing(ctx, c.Cur, connections.FenceOptions{RevokedBefore: r.req.RevokedBefore})
	if errors.Is(err, connections.ErrNotFound) {
		// Nothing to fence (never existed, or an erasure already deleted the connection item): without it every
		// guard refuses new writes, so only leftovers can remain; the other phases delete them.
		return nil
	}
	if err != nil {
		return err
	}
	if fa.IsZero() {
		// First fence: count the runs it stops. No run can start any more, so the count is final.
		n, err := r.activeRuns(ctx)
		if err != nil {
			return err
		}
		fa = e.c.Now()
		if n > 0 {
			fa = fa.Add(e.c.Settle)
		}
		if fa, err = e.c.Connections.SetFinishAfter(ctx, c.Cur, fa); err != nil {
			return err
		}
		c.Cancelled += n
	}
	c.FinishAfter = fa
	if err := e.c.Runs.CancelActiveRuns(ctx, c.Cur, CancelReason); err != nil {
		return fmt.Errorf("cancel the runs of connection %s: %w", c.Cur, err)
	}
	return nil
}

// activeRuns counts the connection's connectors that hold an active run.
func (r *run) activeRuns(ctx context.Context) (int64, error) {
	var n int64
	var start map[string]ddbtypes.AttributeValue
	for {
		out, err := r.e.c.DB.Query(ctx, &dynamodb.QueryInput{
			TableName: &r.e.c.Table, ExclusiveStartKey: start, ConsistentRead: aws.Bool(true),
			KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
			FilterExpression:          aws.String("attribute_exists(activeRun)"),
			ProjectionExpression:      aws.String("pk, sk"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(connections.PK(r.cur.Cur)), ":p": str(table.PrefixConnector)},
		})
		if err != nil {
			return 0, fmt.Errorf("count active runs: %w", err)
		}
		n += int64(len(out.Items))
		if out.LastEvaluatedKey == nil {
			return n, nil
		}
		start = out.LastEvaluatedKey
	}
}

// Kinds by sort key, for the report.
func kindOf(pk, sk string) string {
	switch {
	case strings.HasPrefix(pk, table.PrefixAPIKey):
		return "apiKeyHash"
	case strings.HasPrefix(pk, table.PrefixState) && sk == table.SKReauth:
		return "reauthTicket"
	case strings.HasPrefix(pk, table.PrefixState):
		return "oauthState"
	}
	for _, k := range []struct{ prefix, kind string }{
		{table.SKMeta, "connection"}, {table.SKToken, "token"}, {table.SKKeys, "apiKeyCount"}, {table.PrefixKey, "apiKey"},
		{table.SKConnectors, "connectorCount"}, {table.PrefixConnector, "connector"}, {table.PrefixRun, "run"},
		{table.PrefixCkpt, "checkpoint"}, {table.PrefixIdx, "issueIndex"}, {table.PrefixSync, "syncState"},
		{table.SKPseudoKey, "pseudonymKey"}, {table.PrefixPoints, "pointsCounter"},
	} {
		if sk == k.prefix || strings.HasPrefix(sk, k.prefix) && strings.HasSuffix(k.prefix, "#") {
			return k.kind
		}
	}
	return "other"
}

// keyItem reports whether sk is kept until the keys phase (API keys and their count).
func keyItem(sk string) bool { return strings.HasPrefix(sk, table.PrefixKey) || sk == table.SKKeys }

// items deletes the partition's items page by page: every item but the connection and the API keys, or (keys)
// every item but the connection, each API key listing's hash item first.
func (r *run) items(ctx context.Context, keys bool) error {
	c, e := r.cur, r.e
	for {
		if err := r.budget(ctx); err != nil {
			return err
		}
		in := &dynamodb.QueryInput{
			TableName: &e.c.Table, ConsistentRead: aws.Bool(true), Limit: aws.Int32(e.c.PageSize),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ProjectionExpression:      aws.String("pk, sk, #hash"),
			ExpressionAttributeNames:  map[string]string{"#hash": "hash"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(connections.PK(c.Cur))},
		}
		if c.Start != nil {
			in.ExclusiveStartKey = map[string]ddbtypes.AttributeValue{"pk": str(c.Start["pk"]), "sk": str(c.Start["sk"])}
		}
		out, err := e.c.DB.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("list the items of connection %s: %w", c.Cur, err)
		}
		var first, then []map[string]ddbtypes.AttributeValue
		for _, it := range out.Items {
			sk := s(it["sk"])
			switch {
			case sk == connections.MetaSK:
			case keys && strings.HasPrefix(sk, table.PrefixKey):
				if h := s(it["hash"]); h != "" {
					first = append(first, key(table.APIKeyPK(h), table.SKAPIKey))
				}
				then = append(then, key(s(it["pk"]), sk))
			case keys == keyItem(sk), keys && !c.Dry:
				// The keys phase also takes anything left beside the keys (the connection item must go last); a
				// dry run, having deleted nothing, counted those in the items phase already.
				then = append(then, key(s(it["pk"]), sk))
			}
		}
		if keys && len(first) > 0 {
			// A hash item whose listing is gone could never be found again: hashes go in an earlier batch.
			if err := r.deleteItems(ctx, first); err != nil {
				return err
			}
		}
		if err := r.deleteItems(ctx, then); err != nil {
			return err
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		c.Start = map[string]string{"pk": s(out.LastEvaluatedKey["pk"]), "sk": s(out.LastEvaluatedKey["sk"])}
	}
}

// states deletes the OAuth states and re-authorisation tickets bound to the connection.
func (r *run) states(ctx context.Context) error {
	c, e := r.cur, r.e
	for {
		if err := r.budget(ctx); err != nil {
			return err
		}
		in := &dynamodb.QueryInput{
			TableName: &e.c.Table, IndexName: aws.String(IndexName), Limit: aws.Int32(e.c.PageSize),
			KeyConditionExpression:    aws.String("gsi1pk = :g"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":g": str(oauthstate.ConnGSIPK(c.Cur))},
		}
		if c.Start != nil {
			in.ExclusiveStartKey = map[string]ddbtypes.AttributeValue{}
			for k, v := range c.Start {
				in.ExclusiveStartKey[k] = str(v)
			}
		}
		out, err := e.c.DB.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("list the OAuth states of connection %s: %w", c.Cur, err)
		}
		keys := make([]map[string]ddbtypes.AttributeValue, 0, len(out.Items))
		for _, it := range out.Items {
			keys = append(keys, key(s(it["pk"]), s(it["sk"])))
		}
		if err := r.deleteItems(ctx, keys); err != nil {
			return err
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		c.Start = map[string]string{}
		for k, v := range out.LastEvaluatedKey {
			c.Start[k] = s(v)
		}
	}
}

// deleteItems deletes keys (or counts them, in a dry run) in batches of 25, retrying unprocessed items with
// backoff.
func (r *run) deleteItems(ctx context.Context, keys []map[string]ddbtypes.AttributeValue) error {
	e := r.e
	for i := 0; i < len(keys); i += 25 {
		batch := keys[i:min(i+25, len(keys))]
		if !r.cur.Dry {
			if err := e.t.DeleteKeys(ctx, batch); err != nil {
				return fmt.Errorf("delete items: %w", err)
			}
		}
		for _, k := range batch {
			r.count(kindOf(s(k["pk"]), s(k["sk"])), 1)
		}
	}
	return nil
}

func (r *run) count(kind string, n int64) {
	if n == 0 {
		return
	}
	r.cur.Deleted[kind] += n
	if r.behind {
		r.cur.Behind[kind] += n
	}
}

// prefix is the connection's S3 prefix. The trailing slash keeps connection "ab" from matching "abc/".
func (r *run) prefix() string { return r.cur.Cur + "/" }

// versions deletes every object version and delete marker under the prefix, a list page (up to 1000, the
// DeleteObjects limit) at a time.
func (r *run) versions(ctx context.Context) error {
	c, e := r.cur, r.e
	for {
		if err := r.budget(ctx); err != nil {
			return err
		}
		in := &s3.ListObjectVersionsInput{Bucket: &e.c.Bucket, Prefix: aws.String(r.prefix()), MaxKeys: aws.Int32(e.c.PageSize)}
		if c.KeyMarker != "" {
			in.KeyMarker, in.VersionIdMarker = aws.String(c.KeyMarker), aws.String(c.VerMarker)
		}
		out, err := e.c.S3.ListObjectVersions(ctx, in)
		if err != nil {
			return fmt.Errorf("list object versions of connection %s: %w", c.Cur, err)
		}
		ids := make([]s3types.ObjectIdentifier, 0, len(out.Versions)+len(out.DeleteMarkers))
		for _, v := range out.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range out.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) > 0 && !c.Dry {
			res, err := e.c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &e.c.Bucket,
				Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
			if err != nil {
				return fmt.Errorf("delete object versions of connection %s: %w", c.Cur, err)
			}
			if len(res.Errors) > 0 {
				// Codes only: messages may quote keys.
				return fmt.Errorf("delete object versions of connection %s: %d failed (first: %s)", c.Cur, len(res.Errors), aws.ToString(res.Errors[0].Code))
			}
		}
		r.count("objectVersion", int64(len(out.Versions)))
		r.count("deleteMarker", int64(len(out.DeleteMarkers)))
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		// What was listed is gone, so an erasure lists from the start again; only a dry run moves on.
		if c.Dry {
			c.KeyMarker, c.VerMarker = aws.ToString(out.NextKeyMarker), aws.ToString(out.NextVersionIdMarker)
		}
	}
}

// uploads aborts every incomplete multipart upload under the prefix (their parts are stored, billed and
// readable by nothing but a completion, yet they are data).
func (r *run) uploads(ctx context.Context) error {
	c, e := r.cur, r.e
	for {
		if err := r.budget(ctx); err != nil {
			return err
		}
		in := &s3.ListMultipartUploadsInput{Bucket: &e.c.Bucket, Prefix: aws.String(r.prefix()), MaxUploads: aws.Int32(e.c.PageSize)}
		if c.KeyMarker != "" {
			in.KeyMarker, in.UploadIdMarker = aws.String(c.KeyMarker), aws.String(c.UploadMarker)
		}
		out, err := e.c.S3.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("list multipart uploads of connection %s: %w", c.Cur, err)
		}
		for _, u := range out.Uploads {
			if !c.Dry {
				_, err := e.c.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &e.c.Bucket, Key: u.Key, UploadId: u.UploadId})
				var nsu *s3types.NoSuchUpload
				if err != nil && !errors.As(err, &nsu) {
					return fmt.Errorf("abort multipart upload of connection %s: %w", c.Cur, err)
				}
			}
			r.count("multipartUpload", 1)
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		if c.Dry {
			c.KeyMarker, c.UploadMarker = aws.ToString(out.NextKeyMarker), aws.ToString(out.NextUploadIdMarker)
		}
	}
}

// meta deletes the connection item, the last of the connection.
func (r *run) meta(ctx context.Context) error {
	c, e := r.cur, r.e
	k := key(connections.PK(c.Cur), connections.MetaSK)
	if c.Dry {
		out, err := e.c.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &e.c.Table, Key: k, ProjectionExpression: aws.String("pk")})
		if err != nil {
			return fmt.Errorf("get connection %s: %w", c.Cur, err)
		}
		if out.Item != nil {
			r.count("connection", 1)
		}
		return nil
	}
	out, err := e.c.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &e.c.Table, Key: k, ReturnValues: ddbtypes.ReturnValueAllOld})
	if err != nil {
		return fmt.Errorf("delete connection %s: %w", c.Cur, err)
	}
	if out.Attributes != nil {
		r.count("connection", 1)
	}
	return nil
}

// scanSite reads one page of connection items and queues those holding the site. A scan of the connection
// items is acceptable for an admin operation: it reads one item per connection (the filter drops the rest, but
// they are read), paginated and resumable through the continuation.
func (r *run) scanSite(ctx context.Context) error {
	c, e := r.cur, r.e
	if err := r.budget(ctx); err != nil {
		return err
	}
	in := &dynamodb.ScanInput{
		TableName: &e.c.Table, Limit: aws.Int32(e.c.PageSize), ConsistentRead: aws.Bool(true),
		FilterExpression:          aws.String("#type = :conn AND sk = :meta"),
		ProjectionExpression:      aws.String("id, sites"),
		ExpressionAttributeNames:  map[string]string{"#type": "type"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":conn": str(connections.ItemType), ":meta": str(connections.MetaSK)},
	}
	if c.Scan != nil {
		in.ExclusiveStartKey = map[string]ddbtypes.AttributeValue{"pk": str(c.Scan["pk"]), "sk": str(c.Scan["sk"])}
	}
	out, err := e.c.DB.Scan(ctx, in)
	if err != nil {
		return fmt.Errorf("find the connections of site: %w", err)
	}
	for _, it := range out.Items {
		sites, _ := it["sites"].(*ddbtypes.AttributeValueMemberL)
		if sites == nil {
			continue
		}
		for _, sv := range sites.Value {
			m, _ := sv.(*ddbtypes.AttributeValueMemberM)
			if m != nil && s(m.Value["cloudId"]) == c.Site {
				if id := s(it["id"]); id != "" && !slices.Contains(c.Queue, id) && !slices.Contains(c.Done, id) {
					c.Queue = append(c.Queue, id)
				}
				break
			}
		}
	}
	if out.LastEvaluatedKey == nil {
		c.ScanDone, c.Scan = true, nil
		return nil
	}
	c.Scan = map[string]string{"pk": s(out.LastEvaluatedKey["pk"]), "sk": s(out.LastEvaluatedKey["sk"])}
	return nil
}

// deleteSitePause deletes the site's quota pause (APP / PAUSE#site#<cloudId>), the one app-wide item naming it.
func (r *run) deleteSitePause(ctx context.Context) error {
	c, e := r.cur, r.e
	k := key(table.PKApp, table.PauseSiteSK(c.Site))
	if c.Dry {
		out, err := e.c.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &e.c.Table, Key: k, ProjectionExpression: aws.String("pk")})
		if err != nil {
			return fmt.Errorf("get site pause: %w", err)
		}
		if out.Item != nil {
			r.count("sitePause", 1)
		}
		return nil
	}
	out, err := e.c.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &e.c.Table, Key: k, ReturnValues: ddbtypes.ReturnValueAllOld})
	if err != nil {
		return fmt.Errorf("delete site pause: %w", err)
	}
	if out.Attributes != nil {
		r.count("sitePause", 1)
	}
	return nil
}

// ExpiredRevoked returns up to limit connections whose grant has been revoked (reauth_required) since before
// `before`: the dispatcher erases each with Erase(Request{ConnectionID: id, RevokedBefore: before}), which
// re-checks the condition in its fence, so a connection re-authorised meanwhile is left alone.
func (e *Eraser) ExpiredRevoked(ctx context.Context, before time.Time, limit int32) ([]string, error) {
	return e.listed(ctx, connections.RevokedGSIPK, before, limit)
}

// Pending returns up to limit connections whose erasure began, did not finish, and may finish by now.
func (e *Eraser) Pending(ctx context.Context, now time.Time, limit int32) ([]string, error) {
	return e.listed(ctx, connections.ErasingGSIPK, now.Add(time.Second), limit)
}

func (e *Eraser) listed(ctx context.Context, partition string, before time.Time, limit int32) ([]string, error) {
	out, err := e.c.DB.Query(ctx, &dynamodb.QueryInput{
		TableName: &e.c.Table, IndexName: aws.String(IndexName), Limit: aws.Int32(limit),
		KeyConditionExpression: aws.String("gsi1pk = :g AND gsi1sk < :b"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":g": str(partition), ":b": str(before.UTC().Format(time.RFC3339)),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("list %s connections: %w", partition, err)
	}
	ids := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if _, id, ok := strings.Cut(s(it["gsi1sk"]), "#"); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Total is the number of things a report counts (for the audit line and tests).
func (r *Report) Total() int64 {
	var n int64
	for _, k := range slices.Sorted(maps.Keys(r.Deleted)) {
		n += r.Deleted[k]
	}
	return n
}

func str(v string) ddbtypes.AttributeValue { return table.S(v) }
func s(v ddbtypes.AttributeValue) string   { return table.StringOf(v) }
func key(pk, sk string) table.Item         { return table.Key(pk, sk) }
