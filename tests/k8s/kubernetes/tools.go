//go:build tools

// Package tools pins the Kubernetes control-plane commands the test environment
// builds; it is never compiled itself, it only keeps `go mod tidy` from dropping them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
