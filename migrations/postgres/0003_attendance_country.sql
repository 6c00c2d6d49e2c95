-- Coarse country of an attendance session, from the gateway's optional offline IP lookup (NULL when off).
ALTER TABLE attendance_sessions ADD COLUMN country TEXT;
