package atlassiansim

import (
	"errors"
	"net/http"
	"time"
)

// Info is what GET /_sim/info returns: enough for a script to drive the simulator.
type Info struct {
	BaseURL      string          `json:"baseUrl"`
	MediaURL     string          `json:"mediaUrl"`
	Latency      LatencyProfile  `json:"latency"`
	ClientID     string          `json:"clientId"`
	RedirectURIs []string        `json:"redirectUris"`
	TestControls bool            `json:"testControls"`
	Now          time.Time       `json:"now"`
	Sites        []Site          `json:"sites"`
	Users        []User          `json:"users"`
	RateLimits   RateLimitConfig `json:"rateLimits"`
}

// Info describes the simulator.
func (s *Server) Info() Info {
	return Info{BaseURL: s.URL(), MediaURL: s.MediaURL(), Latency: s.Latency(), ClientID: s.cfg.ClientID, RedirectURIs: s.cfg.RedirectURIs, TestControls: s.cfg.TestControls,
		Now: s.clock.Now(), Sites: s.Sites(), Users: s.Users(), RateLimits: s.RateLimits()}
}

func adminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrNotFound) {
		status = http.StatusNotFound
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeStrict(r, v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
		return false
	}
	return true
}

// adminRoutes registers the control API. It is JSON in and out; see README.md for the list.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	ok := func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]bool{"ok": true}) }

	mux.HandleFunc("GET /_sim/info", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Info()) })
	mux.HandleFunc("GET /_sim/users", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Users()) })
	mux.HandleFunc("GET /_sim/sites", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Sites()) })

	mux.HandleFunc("GET /_sim/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.clock.Now()})
	})
	mux.HandleFunc("POST /_sim/clock/advance", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			By Duration `json:"by"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		if err := s.AdvanceClock(time.Duration(req.By)); err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.clock.Now()})
	})
	mux.HandleFunc("POST /_sim/clock/set", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Now time.Time `json:"now"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		if err := s.SetClock(req.Now); err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.clock.Now()})
	})

	mux.HandleFunc("POST /_sim/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AccountID string   `json:"accountId"`
			Scopes    []string `json:"scopes"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		t, err := s.IssueTokens(req.AccountID, req.Scopes...)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("POST /_sim/grants/revoke", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AccountID string `json:"accountId"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		if err := s.RevokeGrant(req.AccountID); err != nil {
			adminError(w, errors.Join(err, ErrNotFound))
			return
		}
		ok(w)
	})

	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !decodeAdmin(w, r, &f) {
			return
		}
		if err := s.SetFault(f); err != nil {
			adminError(w, err)
			return
		}
		ok(w)
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults(r.URL.Query().Get("endpoint"))
		ok(w)
	})

	mux.HandleFunc("GET /_sim/counters", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Counters()) })
	mux.HandleFunc("POST /_sim/counters/reset", func(w http.ResponseWriter, r *http.Request) { s.ResetCounters(); ok(w) })

	mux.HandleFunc("GET /_sim/ratelimits", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.RateLimits()) })
	mux.HandleFunc("PUT /_sim/ratelimits", func(w http.ResponseWriter, r *http.Request) {
		var c RateLimitConfig
		if !decodeAdmin(w, r, &c) {
			return
		}
		s.SetRateLimits(c)
		writeJSON(w, http.StatusOK, s.RateLimits())
	})

	mux.HandleFunc("GET /_sim/latency", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Latency()) })
	mux.HandleFunc("PUT /_sim/latency", func(w http.ResponseWriter, r *http.Request) {
		var p LatencyProfile
		if !decodeAdmin(w, r, &p) {
			return
		}
		if p.Name != "" && p.Search == 0 && p.Get == 0 && p.Bulk == 0 && p.Token == 0 && p.MediaFirstByte == 0 && p.MediaBytesPerSecond == 0 {
			named, err := LatencyProfileNamed(p.Name) // {"name":"wan"} selects the named profile
			if err != nil {
				adminError(w, err)
				return
			}
			p = named
		}
		s.SetLatency(p)
		writeJSON(w, http.StatusOK, s.Latency())
	})

	mux.HandleFunc("POST /_sim/sites/{cloudId}/issues", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Project string `json:"project"`
			IssueChange
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		ref, err := s.CreateIssue(r.PathValue("cloudId"), req.Project, req.IssueChange)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, ref)
	})
	mux.HandleFunc("PATCH /_sim/sites/{cloudId}/issues/{idOrKey}", func(w http.ResponseWriter, r *http.Request) {
		var ch IssueChange
		if !decodeAdmin(w, r, &ch) {
			return
		}
		ref, err := s.UpdateIssue(r.PathValue("cloudId"), r.PathValue("idOrKey"), ch)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ref)
	})
	mux.HandleFunc("DELETE /_sim/sites/{cloudId}/issues/{idOrKey}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteIssue(r.PathValue("cloudId"), r.PathValue("idOrKey")); err != nil {
			adminError(w, err)
			return
		}
		ok(w)
	})
	mux.HandleFunc("POST /_sim/sites/{cloudId}/issues/{idOrKey}/move", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Project string `json:"project"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		ref, err := s.MoveIssue(r.PathValue("cloudId"), r.PathValue("idOrKey"), req.Project)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ref)
	})
	mux.HandleFunc("PUT /_sim/sites/{cloudId}/projects/{key}/permissions/{accountId}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Browse bool `json:"browse"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		if err := s.SetProjectPermission(r.PathValue("cloudId"), r.PathValue("key"), r.PathValue("accountId"), req.Browse); err != nil {
			adminError(w, err)
			return
		}
		ok(w)
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control route " + r.Method + " " + r.URL.Path})
	})
}
