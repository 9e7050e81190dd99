<?php
// example.php: emits a few changes of table users from PHP through libdatasync.
//
//   php examples/php/example.php /etc/datasync/node-a.conf
//   DATASYNC_LIB=build/libdatasync.so.0 php examples/php/example.php node-a.conf
//
// The table is the one `make demo` creates (users: id, name, email,
// balance). A real application commits its own write to its database first,
// then emits the row as it now is, exactly as here.

declare(strict_types=1);

require __DIR__ . '/Datasync.php';

use Datasync\DatasyncException;
use Datasync\Producer;

$config = $argv[1] ?? (getenv('DATASYNC_CONFIG') ?: '');
if ($config === '') {
    fwrite(STDERR, "usage: php example.php CONFIG (or DATASYNC_CONFIG=CONFIG)\n");
    exit(2);
}

try {
    $producer = new Producer($config);
    printf("libdatasync %s\n", Producer::libraryVersion());

    $users = [
        101 => ['name' => 'Rasmus', 'balance' => '10.00'],
        102 => ['name' => 'Zeev', 'balance' => '20.00'],
        103 => ['name' => 'Andi', 'balance' => '30.00'],
    ];
    foreach ($users as $id => $u) {
        // INSERT INTO users ... ; COMMIT;   (the application's own write)
        $producer->emit('create', 'users', ['id' => $id],
            ['id' => $id, 'name' => $u['name'], 'email' => "user$id@example.com",
             'balance' => $u['balance']]);
        echo "  create users id=$id\n";
    }

    // DECIMAL values travel as strings, so they stay exact.
    $producer->emit('update', 'users', ['id' => 102],
        ['id' => 102, 'name' => 'Zeev', 'email' => 'user102@example.com', 'balance' => '25.50']);
    echo "  update users id=102\n";

    $producer->emit('delete', 'users', ['id' => 103], null);
    echo "  delete users id=103\n";

    // Bad input is refused before anything is published, naming the field.
    try {
        $producer->emit('update', 'users', [], ['id' => 104]);
    } catch (DatasyncException $e) {
        echo "  refused as expected: {$e->getMessage()}\n";
    }

    $producer->flush(10000);
    $s = $producer->stats();
    printf("emitted %d, confirmed %d, spooled %d\n", $s['emitted'], $s['confirmed'], $s['spooled']);
    $producer->close();
} catch (DatasyncException $e) {
    fwrite(STDERR, "example.php: {$e->getMessage()}\n");
    exit(1);
}
