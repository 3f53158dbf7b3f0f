// Command pause is the sandbox ("pause") image of the project's single-node
// Kubernetes test cluster (scripts/k8s-test-cluster): no registry is
// reachable there, so the cluster imports this static binary as an image
// instead of pulling registry.k8s.io/pause.
//
// As a pod's first process it waits for SIGTERM or SIGINT and reaps orphaned
// children (it is PID 1 when the pod shares its process namespace). With
// -listen ADDR it also answers HTTP there, so the same image serves the
// cluster's smoke test (a Pod behind a NodePort Service).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	listen := flag.String("listen", "", "also serve HTTP on this address (smoke tests)")
	flag.Parse()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)

	if *listen != "" {
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "spinbook-pause %s\n", host)
		})
		go func() {
			if err := http.ListenAndServe(*listen, nil); err != nil {
				fmt.Fprintln(os.Stderr, "pause:", err)
				os.Exit(1)
			}
		}()
	}

	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
