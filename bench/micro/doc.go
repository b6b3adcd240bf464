// Package micro holds the in-process micro-benchmarks of issue 8 (no Vault
// needed): issuing step credentials through the engine on
// logical.InmemStorage with every storage call counted, and verifying an
// engine-issued credential offline with the verifier and token packages
// beside raw ed25519.Verify. Run them with
//
//	go test -run='^$' -bench=. -benchmem ./bench/micro/
//
// scripts/bench.sh includes their output in BENCHMARKS.md.
package micro
