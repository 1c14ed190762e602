<?php

namespace App\Command;

use App\Service\Database;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** `bin/console app:database`: creates and seeds the SQLite database before the first request. */
class DatabaseCommand extends Command
{
    protected static $defaultName = 'app:database';
    protected static $defaultDescription = 'Creates and seeds the SQLite database';

    public function __construct(private readonly Database $db)
    {
        parent::__construct();
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $count = $this->db->pdo()->query('SELECT COUNT(*) FROM posts')->fetchColumn();
        $output->writeln("The database has $count posts.");

        return Command::SUCCESS;
    }
}
