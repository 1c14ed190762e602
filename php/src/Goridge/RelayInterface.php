<?php

declare(strict_types=1);

namespace Pacer\Goridge;

use Pacer\Goridge\Exception\FrameException;
use Pacer\Goridge\Exception\TransportException;

/** A bidirectional channel of Goridge frames. */
interface RelayInterface extends \Stringable
{
    /**
     * Writes one frame. The whole frame (header, options, payload) goes out in a single
     * write call, so a peer that reads the 12-byte header with one read never sees it split.
     *
     * @throws TransportException
     */
    public function send(Frame $frame): void;

    /**
     * Blocks until one whole frame has arrived and returns it (CRC verified).
     *
     * @throws TransportException on EOF or a read error
     * @throws FrameException when the bytes are not a valid frame
     */
    public function waitFrame(): Frame;

    /**
     * Whether input is waiting (a frame, or EOF) without consuming it.
     * $timeout is in seconds; 0 polls without blocking.
     */
    public function hasFrame(float $timeout = 0.0): bool;

    public function close(): void;
}
