DROP TABLE IF EXISTS "CallbackOutbox";
