// Thin wrapper: etcd's own main (go.etcd.io/etcd/server/v3/etcdmain), at the release pinned in
// go.mod. `go install` refuses etcd's module because of its replace directives, hence this.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
