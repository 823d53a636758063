package table

import (
	"hash/fnv"
	"strconv"
)

// The due index's connector and run partitions. Due connectors live under DUE#<n> (gsi1sk: due time) and
// unfinished runs under ACTIVE#<n> (gsi1sk: creation time), n = DueShard(connector id). One partition key value
// lives on one index partition, which serves at most 1,000 write units and 3,000 read units a second, and every
// schedule move is a delete and a put there; sixteen keep a million connectors well inside those limits (README,
// "Scaling the due index"). The count is fixed: changing it strands index entries under the old values, so it
// needs a migration that rewrites gsi1pk of every due connector and active run.
const (
	DueShards = 16
	// GSIDueLegacy and GSIActiveLegacy are the unsharded values items carried before the index was sharded; they
	// are only read (each item moves to its shard at its next write).
	GSIDueLegacy    = "DUE"
	GSIActiveLegacy = "ACTIVE"
)

// DueShard is the due-index shard of a connector and of its runs: FNV-1a of its id, so it is stable and uniform.
func DueShard(connectorID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(connectorID))
	return int(h.Sum32() % DueShards)
}

// DuePK and ActivePK are the index partition key values of shard n.
func DuePK(n int) string    { return GSIDueLegacy + "#" + strconv.Itoa(n) }
func ActivePK(n int) string { return GSIActiveLegacy + "#" + strconv.Itoa(n) }

// DuePKOf and ActivePKOf are the index partition key values of connector connectorID and of its runs.
func DuePKOf(connectorID string) string    { return DuePK(DueShard(connectorID)) }
func ActivePKOf(connectorID string) string { return ActivePK(DueShard(connectorID)) }
