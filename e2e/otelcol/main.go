// Command otelcol is the smallest OpenTelemetry Collector the tracing tests need: the
// collector's own OTLP receiver (OTLP/HTTP, protobuf and JSON, and OTLP/gRPC) composed
// with a consumer that writes every batch of spans it receives as one line of OTLP JSON
// (the collector's own pdata JSON marshaler) to a file the test reads back.
//
//	otelcol -out spans.jsonl
//
// It binds free loopback ports and prints "http=127.0.0.1:P grpc=127.0.0.1:Q" on stdout
// once the receiver is serving; SIGTERM or SIGINT stop it, and it prints
// "received spans=N batches=M" on the way out (the benchmark's proof that the spans
// arrived; with -out /dev/null nothing else is kept).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

func main() {
	out := flag.String("out", "", "file that receives one OTLP JSON line per batch of spans")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "otelcol: -out is required")
		os.Exit(64)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "otelcol:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	file, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer file.Close()

	var mu sync.Mutex
	var spans, batches int
	marshaler := &ptrace.JSONMarshaler{}
	sink, err := consumer.NewTraces(func(_ context.Context, td ptrace.Traces) error {
		line, err := marshaler.MarshalTraces(td)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		spans += td.SpanCount()
		batches++
		// One write per batch so a reader never sees half a line.
		_, err = file.Write(append(line, '\n'))
		return err
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The receiver binds the ports itself: pick free ones and retry if one was taken
	// between the probe and the receiver's own bind.
	var rcv receiver.Traces
	var httpAddr, grpcAddr string
	for attempt := 0; ; attempt++ {
		httpAddr, grpcAddr = freePort(), freePort()
		rcv, err = start(ctx, httpAddr, grpcAddr, sink)
		if err == nil {
			break
		}
		if attempt == 5 {
			return err
		}
	}
	fmt.Printf("http=%s grpc=%s\n", httpAddr, grpcAddr)
	<-ctx.Done()
	err = rcv.Shutdown(context.Background())
	mu.Lock()
	fmt.Printf("received spans=%d batches=%d\n", spans, batches)
	mu.Unlock()
	return err
}

func start(ctx context.Context, httpAddr, grpcAddr string, sink consumer.Traces) (receiver.Traces, error) {
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	// Both protocols are defaults that are off until set (configoptional.Default).
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = httpAddr
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = grpcAddr
	rcv, err := factory.CreateTraces(ctx, receivertest.NewNopSettings(factory.Type()), cfg, sink)
	if err != nil {
		return nil, err
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		_ = rcv.Shutdown(context.Background())
		return nil, err
	}
	return rcv, nil
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}
