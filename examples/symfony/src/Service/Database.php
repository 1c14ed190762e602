<?php

namespace App\Service;

use Symfony\Contracts\Service\ResetInterface;

/**
 * The app's SQLite database (PDO). Created and seeded on first use. Between requests the
 * kernel resets it (ResetInterface): a transaction a request left open is rolled back,
 * as Doctrine's connection reset does, and the connection stays open.
 */
class Database implements ResetInterface
{
    private ?\PDO $pdo = null;

    public function __construct(private readonly string $path)
    {
    }

    public function pdo(): \PDO
    {
        if ($this->pdo === null) {
            $fresh = !is_file($this->path) || filesize($this->path) === 0;
            if (!is_dir(dirname($this->path))) {
                mkdir(dirname($this->path), 0777, true);
            }
            $this->pdo = new \PDO('sqlite:' . $this->path, null, null, [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
            $this->pdo->exec('PRAGMA busy_timeout = 5000');
            if ($fresh) {
                $this->seed();
            }
        }

        return $this->pdo;
    }

    /** @return array<string, mixed>|null */
    public function post(int $id): ?array
    {
        $query = $this->pdo()->prepare('SELECT id, title, body, created_at FROM posts WHERE id = ?');
        $query->execute([$id]);
        $row = $query->fetch(\PDO::FETCH_ASSOC);

        return $row === false ? null : $row;
    }

    public function reset(): void
    {
        if ($this->pdo !== null && $this->pdo->inTransaction()) {
            $this->pdo->rollBack();
            error_log('[app] rolled back a transaction the request left open');
        }
    }

    private function seed(): void
    {
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL)');
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)');
        $insert = $this->pdo->prepare('INSERT INTO posts (title, body, created_at) VALUES (?, ?, ?)');
        $this->pdo->beginTransaction();
        foreach (range(1, 20) as $i) {
            $insert->execute(["Post number $i", str_repeat("The body of post $i. ", 20), gmdate('Y-m-d')]);
        }
        $this->pdo->commit();
    }
}
