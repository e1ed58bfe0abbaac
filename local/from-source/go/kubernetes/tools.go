//go:build tools

// The commands this module builds (tools/from_source runs go build on them). k8s.io/kubernetes
// replaces its k8s.io/* staging modules with directories of its own tree; go.mod requires
// them at the matching v0.x release instead.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
