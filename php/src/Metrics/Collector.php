<?php

declare(strict_types=1);

namespace Pacer\Metrics;

/**
 * A metric definition for {@see Metrics::declare()}, serialised as the `collector` object
 * of `metrics.Declare` (docs/wire-protocol.md §4.2).
 */
final class Collector implements \JsonSerializable
{
    private string $namespace = '';
    private string $subsystem = '';
    private string $help = '';
    /** @var list<string> */
    private array $labels = [];
    /** @var list<float> */
    private array $buckets = [];
    /** @var array<string, float> quantile => allowed error */
    private array $objectives = [];

    private function __construct(public readonly string $type)
    {
    }

    public static function counter(): self
    {
        return new self('counter');
    }

    public static function gauge(): self
    {
        return new self('gauge');
    }

    public static function histogram(float ...$buckets): self
    {
        $self = new self('histogram');
        $self->buckets = \array_values($buckets);

        return $self;
    }

    /** @param array<string|int, float> $objectives quantile => allowed error, e.g. ['0.5' => 0.05] */
    public static function summary(array $objectives = []): self
    {
        $self = new self('summary');
        foreach ($objectives as $quantile => $error) {
            $self->objectives[(string) $quantile] = (float) $error;
        }

        return $self;
    }

    public function withNamespace(string $namespace): self
    {
        $self = clone $this;
        $self->namespace = $namespace;

        return $self;
    }

    public function withSubsystem(string $subsystem): self
    {
        $self = clone $this;
        $self->subsystem = $subsystem;

        return $self;
    }

    public function withHelp(string $help): self
    {
        $self = clone $this;
        $self->help = $help;

        return $self;
    }

    public function withLabels(string ...$labels): self
    {
        $self = clone $this;
        $self->labels = \array_values($labels);

        return $self;
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        $data = [
            'namespace' => $this->namespace,
            'subsystem' => $this->subsystem,
            'type' => $this->type,
            'help' => $this->help,
            'labels' => $this->labels,
            'buckets' => $this->buckets,
        ];
        if ($this->type === 'summary') {
            $data['objectives'] = $this->objectives === [] ? new \stdClass() : $this->objectives;
        }

        return $data;
    }

    /** @return array<string, mixed> */
    public function jsonSerialize(): array
    {
        return $this->toArray();
    }
}
