module pacer.dev/e2e/controlplane/pause

go 1.26.0
