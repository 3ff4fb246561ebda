// Package tracing turns OpenTelemetry traces on when the standard OTEL_* variables ask for them, and
// holds what the service's spans share: the trace context carried in queued work, and the trace and
// span ids in log lines. Off, nothing here runs: callers hold a nil TracerProvider and make no spans.
package tracing

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ServiceName is the resource's service.name unless OTEL_SERVICE_NAME says otherwise.
const ServiceName = "optin"

// Enabled reports whether the environment asks for traces: an OTLP endpoint, or a traces exporter
// other than none — unless OTEL_SDK_DISABLED is true.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" {
		return e != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Start builds the SDK's provider: the exporter the OTEL_* variables name (OTLP over gRPC or HTTP,
// or the console), batched, on a resource naming the service and its version. The SDK reads its
// variables itself, as its documentation says.
func Start(ctx context.Context, version string) (*sdktrace.TracerProvider, error) {
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", ServiceName), attribute.String("service.version", version)),
		resource.Environment()) // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// propagator writes and reads W3C trace context.
var propagator = propagation.TraceContext{}

// Inject returns the traceparent of the span in ctx ("" without one), to travel with queued work.
func Inject(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// Extract returns ctx carrying the remote span of traceparent (unchanged when it is empty or invalid).
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// ExtractHeader returns ctx carrying the remote span of an incoming request's traceparent header.
func ExtractHeader(ctx context.Context, h propagation.HeaderCarrier) context.Context {
	return propagator.Extract(ctx, h)
}

// WithLogIDs returns ctx whose logger adds the trace_id and span_id of the span in ctx to each line.
func WithLogIDs(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ctx
	}
	l := zerolog.Ctx(ctx).With().Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String()).Logger()
	return l.WithContext(ctx)
}

// Tracer is the service's tracer of tp; nil when tracing is off.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer("github.com/optinkit/optin")
}

// StartWork starts the span of one run of queued work: a child of the trace the work was queued in
// (traceparent), or — with newRoot — a trace of its own linked to it. It returns ctx with the span and
// its ids in the logger, and end, which records err and ends the span. With t nil it changes nothing.
func StartWork(ctx context.Context, t trace.Tracer, name, traceparent string, newRoot bool, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	if t == nil {
		return ctx, func(error) {}
	}
	parent := Extract(ctx, traceparent)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if newRoot {
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.LinkFromContext(parent)))
	} else {
		ctx = parent
	}
	ctx, span := t.Start(ctx, name, opts...)
	return WithLogIDs(ctx), func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, "") // the error's text may name a person: the log has it, redacted
		}
		span.End()
	}
}
