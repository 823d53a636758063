package table_test

import (
	"testing"
	"time"

	"jiraexport/shared/table"
)

// The stored key formats are a contract (README "DynamoDB single table"): items written before this package
// existed must still be found, so every builder is pinned to its literal form.
func TestKeys(t *testing.T) {
	t.Parallel()
	hour := time.Date(2026, 3, 10, 7, 59, 59, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct{ got, want string }{
		{table.ConnPK("c1"), "CONN#c1"},
		{table.KeySK("k1"), "KEY#k1"},
		{table.APIKeyPK("ab12"), "APIKEY#ab12"},
		{table.StatePK("ab12"), "STATE#ab12"},
		{table.StatesGSIPK("c1"), "STATES#c1"},
		{table.ConnectorSK("x1"), "CONNECTOR#x1"},
		{table.RunPrefix("x1"), "RUN#x1#"},
		{table.RunSK("x1", "r1"), "RUN#x1#r1"},
		{table.CkptSK("x1", "r1"), "CKPT#x1#r1"},
		{table.IdxPrefix("x1"), "IDX#x1#"},
		{table.IdxSK("x1", "10001"), "IDX#x1#10001"},
		{table.SyncSK("x1"), "SYNC#x1"},
		{table.PointsSK(hour), "POINTS#2026031006"},
		{table.PauseSiteSK("cloud-1"), "PAUSE#site#cloud-1"},
		{table.SKPauseGlobal, "PAUSE#global"},
		{table.SKMeta, "META"},
		{table.SKToken, "TOKEN"},
		{table.SKConnectors, "CONNECTORS"},
		{table.SKPseudoKey, "PSEUDOKEY"},
		{table.PKApp, "APP"},
	} {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	two := []struct {
		name  string
		build func(a, b string) string
		parse func(string) (string, string, bool)
	}{
		{"run", table.RunSK, table.ParseRunSK},
		{"ckpt", table.CkptSK, table.ParseCkptSK},
		{"idx", table.IdxSK, table.ParseIdxSK},
	}
	for _, tc := range two {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b, ok := tc.parse(tc.build("01JCONNECTOR", "10042"))
			if !ok || a != "01JCONNECTOR" || b != "10042" {
				t.Fatalf("round trip: %q %q %v", a, b, ok)
			}
			for _, bad := range []string{"", "CONN#x", tc.build("", "r"), tc.build("x", ""), tc.build("x", "r#s"), tc.build("x", "r")[:4]} {
				if _, _, ok := tc.parse(bad); ok {
					t.Errorf("parse(%q) accepted", bad)
				}
			}
		})
	}
	one := []struct {
		name  string
		build func(string) string
		parse func(string) (string, bool)
	}{
		{"conn", table.ConnPK, table.ParseConnPK},
		{"connector", table.ConnectorSK, table.ParseConnectorSK},
	}
	for _, tc := range one {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if id, ok := tc.parse(tc.build("abc")); !ok || id != "abc" {
				t.Fatalf("round trip: %q %v", id, ok)
			}
			for _, bad := range []string{"", tc.build(""), "X" + tc.build("abc")} {
				if _, ok := tc.parse(bad); ok {
					t.Errorf("parse(%q) accepted", bad)
				}
			}
		})
	}
	t.Run("points", func(t *testing.T) {
		t.Parallel()
		at := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)
		h, ok := table.ParsePointsSK(table.PointsSK(at))
		if !ok || !h.Equal(at.Truncate(time.Hour)) {
			t.Fatalf("round trip: %v %v", h, ok)
		}
		for _, bad := range []string{"POINTS#", "POINTS#2026", "PAUSE#global"} {
			if _, ok := table.ParsePointsSK(bad); ok {
				t.Errorf("parse(%q) accepted", bad)
			}
		}
	})
}

func TestTimes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 10, 12, 0, 1, 234_567_000, time.FixedZone("X", -5*3600))
	if got, want := table.FormatTime(at), "2026-03-10T17:00:01.234567Z"; got != want {
		t.Errorf("FormatTime %q, want %q", got, want)
	}
	if got := table.ParseTime(table.FormatTime(at)); !got.Equal(at) {
		t.Errorf("ParseTime round trip %v", got)
	}
	if !table.ParseTime("not a time").IsZero() || table.TimePtr("") != nil {
		t.Error("unset times must read as zero / nil")
	}
	if got := table.TTL(at); got != at.Unix() {
		t.Errorf("TTL %d, want epoch seconds %d", got, at.Unix())
	}
	if got := table.IntOf(table.TTLValue(at)); got != at.Unix() {
		t.Errorf("TTLValue %d", got)
	}
	if got := table.IntOf(table.Millis(at)); got != at.UnixMilli() {
		t.Errorf("Millis %d, want %d", got, at.UnixMilli())
	}
	if p := table.FromMillis(at.UnixMilli()); p == nil || !p.Equal(at.Truncate(time.Millisecond)) || p.Location() != time.UTC {
		t.Errorf("FromMillis %v", p)
	}
	if table.FromMillis(0) != nil {
		t.Error("FromMillis(0) must be unset")
	}
	if table.IntOf(table.S("12")) != 0 || table.StringOf(table.N(12)) != "" || table.StringOf(table.S("x")) != "x" {
		t.Error("typed readers must not convert")
	}
}
