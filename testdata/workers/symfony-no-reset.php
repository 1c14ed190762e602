<?php

/**
 * The control of the Symfony leak tests (sidecar/tests/symfony.rs): the app's kernel served
 * like Pacer\Symfony\Runtime does, but with no reset at all — requests go straight to the
 * `http_kernel` service (Kernel::handle() would reset the services) and the bridge's own
 * reset does nothing. The tests expect every leak to show here. Run in the app's directory.
 */

declare(strict_types=1);

use App\Kernel;
use Pacer\HttpFoundation\FatalErrorGuard;
use Pacer\HttpFoundation\Server;
use Pacer\HttpFoundation\WorkerApp;
use Pacer\Symfony\SymfonyApp;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;

require getcwd() . '/vendor/autoload.php';

$worker = Pacer\Worker::create();
$guard = FatalErrorGuard::install($worker);
ini_set('display_errors', 'stderr');
(new Symfony\Component\Dotenv\Dotenv())->bootEnv(getcwd() . '/.env');
$kernel = new Kernel($_SERVER['APP_ENV'], (bool) $_SERVER['APP_DEBUG']);
$bridge = new SymfonyApp($kernel); // boots the kernel

$withoutReset = new class ($bridge, $kernel) implements WorkerApp {
    public function __construct(private readonly SymfonyApp $bridge, private readonly Kernel $kernel)
    {
    }

    public function createRequest(\Pacer\Http\Request $request): Request
    {
        return $this->bridge->createRequest($request);
    }

    public function handle(Request $request): Response
    {
        return $this->kernel->getContainer()->get('http_kernel')->handle($request);
    }

    public function terminate(Request $request, Response $response): void
    {
        $this->kernel->getContainer()->get('http_kernel')->terminate($request, $response);
    }

    public function reset(): void
    {
    }
};

exit((new Server($worker, $withoutReset, $guard))->serve());
