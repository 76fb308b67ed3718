import { type FormEvent, useState } from 'react';

import { useLogin } from '../api/queries';

export function LoginPage() {
  const login = useLogin();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');

  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    login.mutate({ username, password });
    setPassword(''); // never keep the password around, whatever the answer
  };

  return (
    <section id="login-view">
      <h2>Log in</h2>
      <form id="login-form" autoComplete="on" onSubmit={onSubmit}>
        <label>
          Username{' '}
          <input
            id="username"
            name="username"
            autoComplete="username"
            required
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label>
          Password{' '}
          <input
            id="password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" disabled={login.isPending}>
          Log in
        </button>
        <p id="login-error" role="alert" className="error">
          {login.isError ? login.error.message : ''}
        </p>
      </form>
    </section>
  );
}
