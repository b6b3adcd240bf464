// Package trust holds the rules of continuous trust for agent sessions:
// what a role allows, how a declared intent is checked against it, how
// every step credential request is checked against the intent, how
// violations are counted and when they revoke a session, and which closed
// sessions resource servers must still be told about.
//
// It has no Vault import: the engine's path handlers translate requests
// into these types, ask for a decision, and persist the outcome. Every
// function here is deterministic given its inputs (the current time is
// always passed in), so the rules test in microseconds.
package trust
