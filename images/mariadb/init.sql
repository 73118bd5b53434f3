-- Run by mariadbd at every start: a database and an account for clients.
CREATE DATABASE IF NOT EXISTS edge;
CREATE USER IF NOT EXISTS 'edge'@'%' IDENTIFIED BY 'edge';
GRANT ALL PRIVILEGES ON edge.* TO 'edge'@'%';
