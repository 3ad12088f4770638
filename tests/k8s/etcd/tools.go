//go:build tools

// Package tools pins the etcd server; the module root of go.etcd.io/etcd/server/v3
// is the etcd command itself. Never compiled, it keeps `go mod tidy` from dropping it.
package tools

import _ "go.etcd.io/etcd/server/v3"
