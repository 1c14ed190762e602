<?php

declare(strict_types=1);

namespace Pacer\Internal;

/**
 * The values of some properties of one object (protected ones included), taken once and
 * written back on demand — how the framework bridges put a booted service back into its
 * post-boot state without replacing the object (other services hold references to it).
 * Arrays are copy-on-write in PHP, so taking and restoring costs no copying.
 *
 * @internal
 */
final class PropertySnapshot
{
    /** @param array<string, mixed> $values */
    private function __construct(
        private readonly object $object,
        private readonly string $scope,
        private readonly array $values,
    ) {
    }

    /**
     * @param list<string>|null $names the properties to keep; null: every non-static
     *                                 property declared by $scope (or the object's class)
     *                                 that holds an array
     * @param class-string|null $scope the class whose view of the object is used (the
     *                                 declaring class, for private properties)
     */
    public static function take(object $object, ?array $names = null, ?string $scope = null): self
    {
        $scope ??= $object::class;
        if ($names === null) {
            $names = [];
            foreach ((new \ReflectionClass($scope))->getProperties() as $property) {
                if (!$property->isStatic() && $property->getDeclaringClass()->getName() === $scope) {
                    $names[] = $property->getName();
                }
            }
            $arraysOnly = true;
        } else {
            $arraysOnly = false;
        }
        $read = \Closure::bind(static function (object $o, array $names, bool $arraysOnly): array {
            $values = [];
            foreach ($names as $name) {
                if (!\property_exists($o, $name)) {
                    continue;
                }
                $value = $o->{$name};
                if (!$arraysOnly || \is_array($value)) {
                    $values[$name] = $value;
                }
            }

            return $values;
        }, null, $scope);

        return new self($object, $scope, $read($object, $names, $arraysOnly));
    }

    /** Writes the kept values back. */
    public function restore(): void
    {
        $write = \Closure::bind(static function (object $o, array $values): void {
            foreach ($values as $name => $value) {
                $o->{$name} = $value;
            }
        }, null, $this->scope);
        $write($this->object, $this->values);
    }

    /** @return list<string> the properties kept */
    public function names(): array
    {
        return \array_keys($this->values);
    }
}
