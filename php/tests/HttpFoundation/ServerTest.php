<?php

declare(strict_types=1);

namespace Pacer\Tests\HttpFoundation;

use Pacer\Goridge\Frame;
use Pacer\Http\Request as PacerRequest;
use Pacer\HttpFoundation\FatalErrorGuard;
use Pacer\HttpFoundation\RequestFactory;
use Pacer\HttpFoundation\Server;
use Pacer\HttpFoundation\WorkerApp;
use Pacer\Tests\Support\Loopback;
use PHPUnit\Framework\TestCase;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

/** The worker loop with a scripted app; pacer's side is played through a Loopback. */
final class ServerTest extends TestCase
{
    private Loopback $loop;

    protected function setUp(): void
    {
        $this->loop = new Loopback();
    }

    private function stopCommand(): void
    {
        $this->loop->server->send(new Frame('{"stop":true}', [], Frame::CONTROL));
    }

    /** @param \Closure(Request): Response $handle */
    private function app(\Closure $handle, ?\Closure $reset = null): ScriptedApp
    {
        return new ScriptedApp($handle, $reset ?? static function (): void {
        });
    }

    private function serve(ScriptedApp $app): int
    {
        // One guard for the whole test process would do; a fresh one per test is harmless.
        return (new Server($this->loop->worker, $app, FatalErrorGuard::install($this->loop->worker)))->serve();
    }

    public function testHandlesTerminatesAndResetsEveryRequest(): void
    {
        $app = $this->app(static function (Request $request): Response {
            echo 'printed ';

            return new Response('path ' . $request->getPathInfo(), 201);
        });
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/one']);
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/two']);
        $this->stopCommand();

        self::assertSame(0, $this->serve($app));

        foreach (['/one', '/two'] as $path) {
            $reply = $this->loop->receiveHttpResponse();
            self::assertSame(201, $reply['context']['status']);
            self::assertSame("printed path $path", $reply['body']);
        }
        self::assertSame(['handle /one', 'terminate', 'reset', 'handle /two', 'terminate', 'reset'], $app->calls);
    }

    public function testAThrowableBecomesAnErrorFrameAndTheWorkerStays(): void
    {
        $app = $this->app(static function (Request $request): Response {
            if ($request->getPathInfo() === '/bad') {
                throw new \LogicException('broken');
            }

            return new Response('fine');
        });
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/bad']);
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/good']);
        $this->stopCommand();

        self::assertSame(0, $this->serve($app));

        $error = $this->loop->receive();
        self::assertTrue($error->hasFlag(Frame::ERROR));
        self::assertStringContainsString('LogicException: broken', $error->payload);
        self::assertSame('fine', $this->loop->receiveHttpResponse()['body']);
        self::assertContains('reset', $app->calls, 'the state is reset after a failed request too');
    }

    public function testAFailedResetRetiresTheWorker(): void
    {
        $app = $this->app(
            static fn (Request $request): Response => new Response('answered'),
            static function (): void {
                throw new \RuntimeException('cannot reset');
            },
        );
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/first']);
        $this->loop->sendHttpRequest(['uri' => 'http://example.com/second']);
        $this->stopCommand();

        self::assertSame(1, $this->serve($app));

        self::assertSame('answered', $this->loop->receiveHttpResponse()['body']);
        // The second request is handed back for another worker, never handled here.
        $handedBack = $this->loop->receiveHttpResponse();
        self::assertSame(['stop' => true], $handedBack['context']);
        self::assertSame(['handle /first', 'terminate', 'reset'], $app->calls);
    }
}

/** @internal a WorkerApp that records what the loop asked of it */
final class ScriptedApp implements WorkerApp
{
    /** @var list<string> */
    public array $calls = [];
    private readonly RequestFactory $requests;

    /**
     * @param \Closure(Request): Response $onHandle
     * @param \Closure(): void $onReset
     */
    public function __construct(private readonly \Closure $onHandle, private readonly \Closure $onReset)
    {
        $this->requests = new RequestFactory();
    }

    public function createRequest(PacerRequest $request): Request
    {
        return $this->requests->create($request);
    }

    public function handle(Request $request): Response
    {
        $this->calls[] = 'handle ' . $request->getPathInfo();

        return ($this->onHandle)($request);
    }

    public function terminate(Request $request, Response $response): void
    {
        $this->calls[] = 'terminate';
    }

    public function reset(): void
    {
        $this->calls[] = 'reset';
        ($this->onReset)();
    }
}
