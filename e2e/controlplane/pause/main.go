// Command pause is the pod sandbox's process for the end-to-end node: the first process
// of every pod, holding its namespaces. It waits for SIGINT or SIGTERM and exits 0, and
// reaps the zombies a shared PID namespace hands it. There is no registry here to pull
// the usual pause image from, so build.sh --node builds this one (static: CGO_ENABLED=0).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pacer-e2e pause")
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every child that has exited; there may be more than one per signal.
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
