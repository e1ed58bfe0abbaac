// The etcd server command, as etcd's own main.go builds it (go.etcd.io/etcd/v3 is not a
// module the build can require without etcd's whole tree).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
