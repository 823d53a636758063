// Package privacy holds the privacy test suite: one test per promise of the privacy policy, each run against a
// realistic scenario (infra/privacytest) on the local stack, scanning everything the product stored or logged.
// The README's "Privacy" section maps every promise to its mechanism and to the test here that proves it.
//
// To add the export's scenario when it lands: extend privacytest.Build (real exports instead of WriteObjects);
// the scans in these tests need no change.
package privacy
