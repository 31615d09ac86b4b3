// composecheck loads Compose files with compose-go, the loader of the `docker compose` CLI: it validates them
// against the Compose Specification's JSON schema (embedded in compose-go) and its own rules, offline, without a
// Docker engine. services/devtools/manifests.py builds it into .cache/composecheck (make composecheck) and runs it.
//
//	composecheck FILE [FILE...]   # later files override earlier ones, as `docker compose -f A -f B config -q`
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE [FILE...]")
		os.Exit(2)
	}
	files := os.Args[1:]
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(filepath.Dir(files[0])), cli.WithName("check"))
	if err == nil {
		_, err = opts.LoadProject(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
