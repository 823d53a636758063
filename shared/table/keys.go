package table

import (
	"strings"
	"time"
)

// Attribute names every item kind shares. Item structs name them in their dynamodbav tags; code that builds
// keys or expressions by hand uses these.
const (
	AttrPK      = "pk"
	AttrSK      = "sk"
	AttrType    = "type"
	AttrVersion = "v"
	// AttrTTL is the table's TTL attribute: epoch seconds (TTL).
	AttrTTL = "ttl"
	// AttrConnID names the connection an item outside the connection's partition belongs to, so erasure can
	// find and verify it.
	AttrConnID = "connId"
	AttrGSI1PK = "gsi1pk"
	AttrGSI1SK = "gsi1sk"
)

// IndexDue is the sparse global secondary index on gsi1pk/gsi1sk (keys only). Its DUE#<n> and ACTIVE#<n> partitions
// (due.go here) belong to shared/connectors; REVOKED and ERASING to shared/connections; STATES#<connId> to
// shared/oauthstate.
const IndexDue = "due"

// Partition keys and prefixes.
const (
	PrefixConn   = "CONN#"
	PrefixAPIKey = "APIKEY#"
	PrefixState  = "STATE#"
	// PKApp is the partition of app-wide items (points counters, quota pauses).
	PKApp = "APP"
	// ConnIDApp is the connId of APP items: they belong to no connection, so erasure never matches them.
	ConnIDApp = "APP"
)

// Sort keys of single items.
const (
	SKMeta       = "META"       // the connection and its sites
	SKToken      = "TOKEN"      // the token envelope
	SKConnectors = "CONNECTORS" // the connector count
	SKKeys       = "KEYS"       // the active API key count
	SKPseudoKey  = "PSEUDOKEY"  // the pseudonym secret
	SKAPIKey     = "APIKEY"     // under APIKEY#<sha256>
	SKState      = "STATE"      // an OAuth state, under STATE#<sha256>
	SKReauth     = "REAUTH"     // a re-authorisation ticket, under STATE#<sha256>
	// SKPauseGlobal is the app-wide quota pause under APP.
	SKPauseGlobal = "PAUSE#global"
)

// Sort key prefixes: every item of a kind begins with one, so a Query with begins_with lists them.
const (
	PrefixKey       = "KEY#"
	PrefixConnector = "CONNECTOR#"
	PrefixRun       = "RUN#"
	PrefixCkpt      = "CKPT#"
	PrefixIdx       = "IDX#"
	PrefixSync      = "SYNC#"
	PrefixPoints    = "POINTS#"
	PrefixPause     = "PAUSE#"
	PrefixPauseSite = "PAUSE#site#"
)

// pointsLayout formats the UTC hour of a points counter.
const pointsLayout = "2006010215"

// ConnPK is the partition of everything that belongs to connection connID.
func ConnPK(connID string) string { return PrefixConn + connID }

// ParseConnPK returns the connection id of a ConnPK.
func ParseConnPK(pk string) (connID string, ok bool) { return cut(pk, PrefixConn) }

// KeySK is the sort key of API key keyID's listing item in its connection's partition.
func KeySK(keyID string) string { return PrefixKey + keyID }

// APIKeyPK is the partition of the API key whose SHA-256 (lower-case hex) is hash.
func APIKeyPK(hash string) string { return PrefixAPIKey + hash }

// StatePK is the partition of the OAuth state or re-authorisation ticket whose SHA-256 is hash.
func StatePK(hash string) string { return PrefixState + hash }

// StatesGSIPK is the "due" index partition listing the OAuth states and tickets bound to connection connID.
func StatesGSIPK(connID string) string { return "STATES#" + connID }

// ConnectorSK is the sort key of connector id.
func ConnectorSK(id string) string { return PrefixConnector + id }

// ParseConnectorSK returns the connector id of a ConnectorSK.
func ParseConnectorSK(sk string) (id string, ok bool) { return cut(sk, PrefixConnector) }

// RunPrefix is the prefix of connector connectorID's run records.
func RunPrefix(connectorID string) string { return PrefixRun + connectorID + "#" }

// RunSK is the sort key of a run record.
func RunSK(connectorID, runID string) string { return RunPrefix(connectorID) + runID }

// ParseRunSK splits a RunSK. Connector and run ids never contain '#'.
func ParseRunSK(sk string) (connectorID, runID string, ok bool) { return cut2(sk, PrefixRun) }

// CkptSK is the sort key of a run's export checkpoint.
func CkptSK(connectorID, runID string) string { return PrefixCkpt + connectorID + "#" + runID }

// ParseCkptSK splits a CkptSK.
func ParseCkptSK(sk string) (connectorID, runID string, ok bool) { return cut2(sk, PrefixCkpt) }

// IdxPrefix is the prefix of connector connectorID's per-issue index entries.
func IdxPrefix(connectorID string) string { return PrefixIdx + connectorID + "#" }

// IdxSK is the sort key of the export's index entry of one issue.
func IdxSK(connectorID, issueID string) string { return IdxPrefix(connectorID) + issueID }

// ParseIdxSK splits an IdxSK.
func ParseIdxSK(sk string) (connectorID, issueID string, ok bool) { return cut2(sk, PrefixIdx) }

// SyncSK is the sort key of a connector's export sync state.
func SyncSK(connectorID string) string { return PrefixSync + connectorID }

// PointsSK is the sort key of the points counter of the UTC hour containing at (under a ConnPK or PKApp).
func PointsSK(at time.Time) string {
	return PrefixPoints + at.UTC().Truncate(time.Hour).Format(pointsLayout)
}

// ParsePointsSK returns the UTC hour of a PointsSK.
func ParsePointsSK(sk string) (hour time.Time, ok bool) {
	s, ok := cut(sk, PrefixPoints)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(pointsLayout, s)
	// time.Parse takes shorter numbers than the layout's; only the builder's exact form is a key.
	if err != nil || PointsSK(t) != sk {
		return time.Time{}, false
	}
	return t, true
}

// PauseSiteSK is the sort key, under PKApp, of the quota pause of site cloudID.
func PauseSiteSK(cloudID string) string { return PrefixPauseSite + cloudID }

// cut returns what follows prefix, when s has it and something follows.
func cut(s, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	return rest, ok && rest != ""
}

// cut2 splits what follows prefix at its one '#'.
func cut2(s, prefix string) (a, b string, ok bool) {
	rest, ok := cut(s, prefix)
	if !ok {
		return "", "", false
	}
	a, b, ok = strings.Cut(rest, "#")
	if !ok || a == "" || b == "" || strings.Contains(b, "#") {
		return "", "", false
	}
	return a, b, true
}
