//go:build tools

// Package tools pins the helm command. Never compiled, it keeps `go mod tidy`
// from dropping it.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
