// Command etcd is the etcd server, built from its published Go module so that the
// end-to-end tests need no container image or download site. The version is the one
// pinned in go.mod beside this file.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
