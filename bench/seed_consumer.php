<?php
// seed_consumer.php: the consumer a PHP shop writes first (php-amqp + mysqli, one REPLACE or DELETE and one ack per message), the baseline bench_consumer measures datasync-consumer against.
//
//   php seed_consumer.php AMQP_URL QUEUE MYSQL_HOST MYSQL_PORT DATABASE COUNT
//
// Consumes COUNT messages from QUEUE with prefetch 100, and for each one:
// json_decode, then REPLACE INTO the event's table the key and data columns
// (create, update) or DELETE by key (delete), in autocommit (one transaction
// per message, as mysqli runs by default), then basic.ack of that message.
// It keeps no versions and never looks at hlc or origin: it does less than
// datasync-consumer, not more. Statements are prepared once per shape and
// reused, which is kinder to it than building SQL per message. Exits 0
// after COUNT acks; prints "seed_consumer: COUNT messages in S s" to stdout.
// Needs Debian's php-cli, php-amqp and php-mysql (scripts/install-deps.sh
// --bench).

declare(strict_types=1);

if ($argc !== 7) {
    fwrite(STDERR, "usage: php seed_consumer.php AMQP_URL QUEUE MYSQL_HOST MYSQL_PORT DATABASE COUNT\n");
    exit(2);
}
[, $url, $queueName, $dbHost, $dbPort, $dbName, $count] = $argv;
$count = (int) $count;

$u = parse_url($url);
$vhost = isset($u['path']) && $u['path'] !== '/' ? rawurldecode(substr($u['path'], 1)) : '/';
$t0 = microtime(true);

$amqp = new AMQPConnection([
    'host' => $u['host'] ?? '127.0.0.1',
    'port' => $u['port'] ?? 5672,
    'vhost' => $vhost,
    'login' => rawurldecode($u['user'] ?? 'guest'),
    'password' => rawurldecode($u['pass'] ?? 'guest'),
]);
$amqp->connect();
$channel = new AMQPChannel($amqp);
$channel->setPrefetchCount(100);
$queue = new AMQPQueue($channel);
$queue->setName($queueName);

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$db = new mysqli($dbHost, 'root', '', $dbName, (int) $dbPort);
$db->set_charset('utf8mb4');

function ident(string $name): string
{
    return '`' . str_replace('`', '``', $name) . '`';
}

/** @var array<string, mysqli_stmt> $statements prepared once per table and column list */
$statements = [];
$done = 0;

$queue->consume(function (AMQPEnvelope $env, AMQPQueue $q) use ($db, &$statements, &$done, $count): bool {
    $ev = json_decode($env->getBody(), true, 64, JSON_THROW_ON_ERROR);
    $table = ident($ev['table']);
    if ($ev['op'] === 'delete') {
        $cols = array_keys($ev['key']);
        $values = array_values($ev['key']);
        $sql = "DELETE FROM $table WHERE "
            . implode(' AND ', array_map(fn ($c) => ident($c) . ' = ?', $cols));
    } else {
        $row = $ev['key'] + $ev['data'];
        $cols = array_keys($row);
        $values = array_values($row);
        $sql = "REPLACE INTO $table (" . implode(', ', array_map('ident', $cols))
            . ') VALUES (' . implode(', ', array_fill(0, count($cols), '?')) . ')';
    }
    $stmt = $statements[$sql] ??= $db->prepare($sql);
    $stmt->bind_param(str_repeat('s', count($values)), ...$values);
    $stmt->execute();
    $q->ack($env->getDeliveryTag());
    return ++$done < $count;
});

$amqp->disconnect();
$db->close();
printf("seed_consumer: %d messages in %.3f s\n", $done, microtime(true) - $t0);
