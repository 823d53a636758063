package export

import (
	"context"
	"errors"
	"fmt"

	"jiraexport/shared/connectors"
	"jiraexport/shared/pseudonym"
)

// Pseudonyms gives a connection's pseudonymizer, creating its secret on first use (shared/pseudonym.Store).
type Pseudonyms interface {
	For(ctx context.Context, connID string) (*pseudonym.Pseudonymizer, error)
}

var _ Pseudonyms = (*pseudonym.Store)(nil)

// unknownPerson names a person Jira sent without an account id (nothing to derive a pseudonym from; their
// display name would identify them).
const unknownPerson = pseudonym.Prefix + "unknown"

// loadPeople sets the scrubber's Person hook when the connector asks for pseudonyms; with display names (the
// default) the scrubber keeps Jira's names and removes only the ids.
func (w *worker) loadPeople(ctx context.Context) error {
	if !w.connector.Include.Pseudonyms() {
		return nil
	}
	if w.e.c.Pseudonyms == nil {
		return errors.New("connector asks for pseudonyms but the export has no pseudonym store")
	}
	p, err := w.e.c.Pseudonyms.For(ctx, w.ref.ConnectionID)
	if errors.Is(err, pseudonym.ErrNotActive) {
		// Erasing or disconnected: stop like any other write fenced by the purge.
		return fmt.Errorf("pseudonym secret: %w", connectors.ErrNotActive)
	} else if err != nil {
		return fmt.Errorf("pseudonym secret: %w", err)
	}
	w.scrub.Person = pseudonymNamer(p)
	return nil
}

// pseudonymNamer is the scrubber's Person hook in pseudonym mode: the display name is never used.
func pseudonymNamer(p *pseudonym.Pseudonymizer) func(accountID, displayName string) string {
	return func(accountID, _ string) string {
		if accountID == "" {
			return unknownPerson
		}
		return p.Person(accountID)
	}
}

// documentOptions are the connector options that change every document (so changing one forces a full run,
// see fingerprint). It is "" for the defaults, so connectors made before these options keep their fingerprint.
func documentOptions(s *connectors.Spec) string {
	out := ""
	if s.Include.Pseudonyms() {
		out += "people=pseudonym;"
	}
	if s.Include.Worklogs {
		out += "worklogs;"
	}
	if s.HasFormat("markdown") {
		out += "markdown;"
	}
	return out
}
